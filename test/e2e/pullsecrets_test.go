package e2e

import (
	"encoding/base64"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"skiff.dev/skiff/nodeagent/image/imagetest"
)

// pullInstanceYAML is an Instance bound to node local whose container
// runs script from image with pull policy (if not empty) and the pull
// Secrets named.
func pullInstanceYAML(name, image, script, policy string, secrets ...string) string {
	y := fmt.Sprintf(`apiVersion: skiff.dev/v1alpha1
kind: Instance
metadata: {name: %s, namespace: default}
spec:
  nodeName: local
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: %s
    args: [%q]
`, name, image, script)
	if policy != "" {
		y += "    imagePullPolicy: " + policy + "\n"
	}
	if len(secrets) > 0 {
		y += "  imagePullSecrets:\n"
		for _, s := range secrets {
			y += "  - name: " + s + "\n"
		}
	}
	return y
}

// waiting is the Instance's first container's waiting reason and message.
func (s *server) waiting(name string) (reason, msg string) {
	out, err := s.kubectl("get", "instance", name, "-o",
		`jsonpath={.status.containerStatuses[0].state.waiting.reason}{"|"}{.status.containerStatuses[0].state.waiting.message}`)
	if err != nil {
		return "", ""
	}
	reason, msg, _ = strings.Cut(out, "|")
	return reason, msg
}

// warningEvents are the messages of the Warning Events of reason about
// the Instance name.
func (s *server) warningEvents(t *testing.T, name, reason string) []string {
	t.Helper()
	out := s.mustKubectl(t, "get", "events", "--field-selector", "type=Warning,involvedObject.name="+name+",reason="+reason,
		"-o", `jsonpath={range .items[*]}{.message}{"\n"}{end}`)
	return strings.FieldsFunc(out, func(r rune) bool { return r == '\n' })
}

// TestImagePullSecretsAndPolicies runs a node on runc against a registry
// that wants a login: without credentials (or with a pull Secret that does
// not exist, which is a Warning Event) the pull fails with the registry's
// 401 in ErrImagePull; with a Secret made by `kubectl create secret
// docker-registry` the container runs, and with pull policy Always a new
// image pushed under the same tag runs at the container's next start;
// policy Never runs an image the node has and leaves a missing one in
// ErrImageNeverPull. The password reaches no Event, status or log.
func TestImagePullSecretsAndPolicies(t *testing.T) {
	requireContainers(t)
	const user, password = "e2e-puller", "pull-pw-7c41e9d2"
	host := imagetest.Host(imagetest.RegistryServer(t, imagetest.BasicAuth(user, password)))
	busybox := func(version string) v1.Image {
		return imagetest.Busybox(t, v1.Config{Env: []string{"PATH=/bin", "VERSION=" + version}, Entrypoint: []string{"sh", "-c"}})
	}
	login := remote.WithAuth(&authn.Basic{Username: user, Password: password})
	ref := imagetest.Push(t, host, "private/busybox:latest", busybox("1"), login)

	s := startServer(t, t.TempDir(), "127.0.0.1:0", "--runtime", "runc", "--insecure-registry", host, "--backoff-base", "1s",
		"--agent-listen", "127.0.0.1:0", "--node-name", "local", "--agent-netns", nodeHost(t, "10.250.9.1/24"))
	waitFor(t, 60*time.Second, func() (bool, error) {
		phase, err := s.kubectl("get", "node", "local", "-o", "jsonpath={.status.phase}")
		return err == nil && phase == "Ready", nil
	})

	// No credentials, and a pull Secret that does not exist: the
	// registry's refusal.
	s.mustKubectl(t, "apply", "-f", writeFile(t, "anon.yaml", pullInstanceYAML("anon", ref, "exec sleep 1000", "")))
	s.mustKubectl(t, "apply", "-f", writeFile(t, "absent.yaml", pullInstanceYAML("absent", ref, "exec sleep 1000", "", "nothere")))
	for _, name := range []string{"anon", "absent"} {
		waitFor(t, 60*time.Second, func() (bool, error) {
			reason, msg := s.waiting(name)
			failed := s.warningEvents(t, name, "Failed")
			return (reason == "ErrImagePull" || reason == "ImagePullBackOff") && strings.Contains(msg, "UNAUTHORIZED") &&
				len(failed) > 0 && strings.Contains(failed[0], "UNAUTHORIZED"), nil
		})
	}
	_, msg := s.waiting("anon")
	t.Logf("without credentials: %s", msg)
	if get := s.mustKubectl(t, "get", "instance", "anon"); !strings.Contains(get, "ErrImagePull") && !strings.Contains(get, "ImagePullBackOff") {
		t.Errorf("kubectl get instance anon shows no pull error:\n%s", get)
	}
	want := "Unable to retrieve some image pull secrets (nothere); attempting to pull the image may not succeed."
	if got := s.warningEvents(t, "absent", "FailedToRetrieveImagePullSecret"); len(got) == 0 || got[0] != want {
		t.Errorf("FailedToRetrieveImagePullSecret Events %q, want %q", got, want)
	}

	// With the credentials: the container runs; Always (the default for
	// :latest) runs the tag's new image at the next start.
	s.mustKubectl(t, "create", "secret", "docker-registry", "regcred",
		"--docker-server="+host, "--docker-username="+user, "--docker-password="+password)
	s.mustKubectl(t, "apply", "-f", writeFile(t, "private.yaml", pullInstanceYAML("private", ref, "echo version $VERSION; sleep 2", "", "regcred")))
	imageID := func() string {
		return s.mustKubectl(t, "get", "instance", "private", "-o", "jsonpath={.status.containerStatuses[0].imageID}")
	}
	digest := func(img v1.Image) string {
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return host + "/private/busybox@" + d.String()
	}
	first := digest(busybox("1"))
	waitFor(t, 90*time.Second, func() (bool, error) { return imageID() == first, nil })
	if policy := s.mustKubectl(t, "get", "instance", "private", "-o", "jsonpath={.spec.containers[0].imagePullPolicy}"); policy != "Always" {
		t.Errorf("imagePullPolicy %q, want the default for :latest, Always", policy)
	}
	second := busybox("2")
	imagetest.Push(t, host, "private/busybox:latest", second, login)
	waitFor(t, 90*time.Second, func() (bool, error) { return imageID() == digest(second), nil })
	waitFor(t, 30*time.Second, func() (bool, error) {
		out, err := s.kubectl("get", "--raw", "/apis/skiff.dev/v1alpha1/namespaces/default/instances/private/log")
		return err == nil && strings.Contains(out, "version 2"), nil
	})

	// Never: the image the node has runs without the registry; a missing
	// one waits.
	s.mustKubectl(t, "apply", "-f", writeFile(t, "never.yaml", pullInstanceYAML("never", ref, "exec sleep 1000", "Never")))
	s.waitPhase(t, "never", "Running")
	missing := host + "/private/busybox:absent"
	s.mustKubectl(t, "apply", "-f", writeFile(t, "never-missing.yaml", pullInstanceYAML("never-missing", missing, "exec sleep 1000", "Never", "regcred")))
	wantMsg := fmt.Sprintf("Container image %q is not present with pull policy of Never", missing)
	waitFor(t, 60*time.Second, func() (bool, error) {
		reason, msg := s.waiting("never-missing")
		return reason == "ErrImageNeverPull" && msg == wantMsg, nil
	})
	if got := s.warningEvents(t, "never-missing", "ErrImageNeverPull"); len(got) != 1 || got[0] != wantMsg {
		t.Errorf("ErrImageNeverPull Events %q, want one %q", got, wantMsg)
	}

	// The password stays in the Secret.
	serverLog, err := os.ReadFile(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	for what, text := range map[string]string{
		"the server's log": string(serverLog),
		"the Events":       s.mustKubectl(t, "get", "events", "-o", "json"),
		"the Instances":    s.mustKubectl(t, "get", "instances", "-o", "json"),
	} {
		for _, v := range []string{password, base64.StdEncoding.EncodeToString([]byte(user + ":" + password))} {
			if strings.Contains(text, v) {
				t.Errorf("the registry password is in %s", what)
			}
		}
	}
	s.mustKubectl(t, "delete", "instances", "--all", "--timeout=60s")
}
