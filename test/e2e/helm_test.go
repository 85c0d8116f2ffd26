package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"skiff.dev/skiff/nodeagent/network/nettest"
)

const (
	// helmTimeout bounds one helm command.
	helmTimeout = 3 * time.Minute
	// helmBuildTimeout bounds building helm; make test's chart lint has
	// compiled it already, so this is mostly a link.
	helmBuildTimeout   = 8 * time.Minute
	helmWebChart       = "../../charts/web"
	helmGuestbookChart = "../../charts/examples/guestbook"
)

// helmCLI runs the real Helm 3 client (helm.sh/helm/v3/cmd/helm, the
// version go.mod pins as a tool) against one server, with Helm's own
// directories private to the test.
type helmCLI struct {
	bin string
	env []string
}

// newHelmCLI builds helm (or takes $HELM_BIN) for s's admin kubeconfig.
func newHelmCLI(t *testing.T, s *server) *helmCLI {
	t.Helper()
	bin := os.Getenv("HELM_BIN")
	if bin == "" {
		root, err := repoRoot()
		if err != nil {
			t.Fatal(err)
		}
		bin = filepath.Join(t.TempDir(), "helm")
		ctx, cancel := context.WithTimeout(context.Background(), helmBuildTimeout)
		defer cancel()
		start := time.Now()
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "helm.sh/helm/v3/cmd/helm")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build helm: %v\n%s", err, out)
		}
		t.Logf("built helm in %v", time.Since(start).Round(time.Second))
	}
	home := t.TempDir()
	env := []string{
		"KUBECONFIG=" + s.kubeconfig,
		"HELM_CACHE_HOME=" + filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(home, "config"),
		"HELM_DATA_HOME=" + filepath.Join(home, "data"),
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KUBECONFIG=") && !strings.HasPrefix(kv, "HELM_") {
			env = append(env, kv)
		}
	}
	return &helmCLI{bin: bin, env: env}
}

// run runs helm and returns its stdout and stderr and its error.
func (h *helmCLI) run(args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), helmTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.bin, args...)
	cmd.Env = h.env
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// must runs helm and fails t unless it exits 0.
func (h *helmCLI) must(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := h.run(args...)
	if err != nil {
		t.Fatalf("helm %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// helmRevision is one row of `helm history -o json`.
type helmRevision struct {
	Revision    int    `json:"revision"`
	Status      string `json:"status"`
	Chart       string `json:"chart"`
	Description string `json:"description"`
}

// TestHelm: the real Helm 3 client drives a release of charts/web on a
// one-node cluster on runc. Rendered charts validate against skiff's
// OpenAPI (kubectl's server-side dry run, strict field validation);
// `helm install` creates the Workload, ConfigMap and Secret, whose
// Instances serve the greeting and a password-protected page, and keeps
// the release in a Secret of type helm.sh/release.v1; `helm upgrade`
// scales to 3 and patches as Helm does: a three-way strategic merge for
// the ConfigMap (a live edit of a field the chart sets is put back, a key
// added live stays) and a JSON merge of the old and new manifests for the
// Workload (a label added live stays); `helm rollback`, `helm history`
// and `helm list` follow the revisions, and `helm uninstall` removes every
// object, the Instances and the release's Secrets.
func TestHelm(t *testing.T) {
	s, host := startLocalNode(t, "10.250.15.1/24")
	helm := newHelmCLI(t, s)
	const greeting = "Hello from skiff, installed by Helm!"

	// Every chart renders to objects that skiff accepts as they are, and
	// refuses a field its OpenAPI schema lacks.
	for _, chart := range []string{helmWebChart, helmGuestbookChart} {
		manifest := writeFile(t, "manifest.yaml", helm.must(t, "template", "check", chart))
		out := s.mustKubectl(t, "apply", "--dry-run=server", "--validate=strict", "-f", manifest)
		if !strings.Contains(out, "workload.skiff.dev/") || !strings.Contains(out, "created (server dry run)") {
			t.Errorf("server dry run of %s:\n%s", chart, out)
		}
	}
	bad := writeFile(t, "bad.yaml", helm.must(t, "template", "check", helmWebChart,
		"--set-json", `resources={"requests":{"cpu":"100m"},"requestz":{"cpu":"1"}}`))
	if out, err := s.kubectl("apply", "--dry-run=server", "--validate=strict", "-f", bad); err == nil ||
		!strings.Contains(err.Error(), `unknown field "spec.template.spec.containers[0].resources.requestz"`) {
		t.Errorf("a Workload with an unknown field: err %v, out %s; want it refused by strict validation", err, out)
	}
	if out := s.mustKubectl(t, "get", "workloads,configmaps,secrets", "-o", "name"); strings.Contains(out, "check") {
		t.Fatalf("a dry run left objects:\n%s", out)
	}

	// Install. Helm's --wait knows no Workloads: it waits for their
	// existence; the Instances are waited for here.
	out := helm.must(t, "install", "web", helmWebChart, "--wait", "--timeout", "2m")
	if !strings.Contains(out, "STATUS: deployed") || !strings.Contains(out, "kubectl get instances") {
		t.Errorf("helm install printed:\n%s", out)
	}
	s.mustKubectl(t, "wait", "--for=condition=Available", "wl/web", "--timeout=80s")
	s.waitHelmInstances(t, "web", "app.kubernetes.io/instance=web", 1)
	ips := s.instanceIPs(t, "app.kubernetes.io/instance=web", 1)
	nettest.Eventually(t, host, "http://"+ips[0]+":8080/", greeting)
	password := s.helmSecretValue(t, "web", "password")
	if len(password) != 16 {
		t.Errorf("generated password %q, want 16 characters", password)
	}
	if code, body := helmGetAuth(t, host, "http://"+ips[0]+":8080/private/", "admin", password); code != http.StatusOK ||
		!strings.Contains(body, "only for admin") {
		t.Errorf("GET /private/ with the password: %d %q", code, body)
	}
	if code, _ := helmGetAuth(t, host, "http://"+ips[0]+":8080/private/", "admin", "wrong"); code != http.StatusUnauthorized {
		t.Errorf("GET /private/ with a wrong password: %d, want 401", code)
	}
	s.wantReleaseSecrets(t, "web", "sh.helm.release.v1.web.v1 helm.sh/release.v1 deployed 1")
	if out := s.mustKubectl(t, "get", "workload,configmap,secret", "-l", "app.kubernetes.io/managed-by=Helm", "-o", "name"); !slices.Equal(names(out), []string{"web", "web", "web"}) {
		t.Errorf("objects labelled managed-by=Helm:\n%s", out)
	}
	if meta := s.mustKubectl(t, "get", "workload", "web", "-o",
		`jsonpath={.metadata.annotations.meta\.helm\.sh/release-name} {.metadata.annotations.meta\.helm\.sh/release-namespace}`); meta != "web default" {
		t.Errorf("Workload's release annotations %q, want \"web default\"", meta)
	}

	// Live changes, as `kubectl edit` would make them.
	s.mustKubectl(t, "patch", "configmap", "web", "--type=merge", "-p", `{"data":{"index.html":"edited live\n","extra":"added live"}}`)
	s.mustKubectl(t, "label", "workload", "web", "team=blue")

	// Upgrade to 3 replicas.
	helm.must(t, "upgrade", "web", helmWebChart, "--set", "replicaCount=3", "--wait", "--timeout", "2m")
	s.waitHelmInstances(t, "web", "app.kubernetes.io/instance=web", 3)
	if got := s.mustKubectl(t, "get", "configmap", "web", "-o", `jsonpath={.data.index\.html}|{.data.extra}`); got != greeting+"\n|added live" {
		t.Errorf("ConfigMap after the upgrade: %q; want the chart's index.html back (three-way merge) and the live key kept", got)
	}
	if got := s.mustKubectl(t, "get", "workload", "web", "-o", "jsonpath={.metadata.labels.team}"); got != "blue" {
		t.Errorf("Workload's live label team after the upgrade: %q, want blue kept", got)
	}
	if got := s.helmSecretValue(t, "web", "password"); got != password {
		t.Errorf("password after the upgrade %q, want the generated one %q kept", got, password)
	}
	s.wantReleaseSecrets(t, "web",
		"sh.helm.release.v1.web.v1 helm.sh/release.v1 superseded 1",
		"sh.helm.release.v1.web.v2 helm.sh/release.v1 deployed 2")

	// A new greeting: the ConfigMap changes, and the Workload's template
	// does not (no restart: the configMap volume is read again).
	helm.must(t, "upgrade", "web", helmWebChart, "--reuse-values", "--set", "greeting=Upgraded")
	if got := s.mustKubectl(t, "get", "configmap", "web", "-o", `jsonpath={.data.index\.html}`); got != "Upgraded\n" {
		t.Errorf("ConfigMap's index.html after the second upgrade: %q", got)
	}
	if got := s.mustKubectl(t, "get", "workload", "web", "-o", "jsonpath={.metadata.generation}"); got != "2" {
		t.Errorf("Workload generation %s after a greeting-only upgrade, want 2 (only the replicas changed)", got)
	}

	// Roll back to the first revision: 1 replica, the first greeting.
	if out := helm.must(t, "rollback", "web", "1", "--wait", "--timeout", "2m"); !strings.Contains(out, "Rollback was a success") {
		t.Errorf("helm rollback printed %q", out)
	}
	s.waitHelmInstances(t, "web", "app.kubernetes.io/instance=web", 1)
	if got := s.mustKubectl(t, "get", "configmap", "web", "-o", `jsonpath={.data.index\.html}`); got != greeting+"\n" {
		t.Errorf("ConfigMap's index.html after the rollback: %q", got)
	}
	var history []helmRevision
	if err := json.Unmarshal([]byte(helm.must(t, "history", "web", "-o", "json")), &history); err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, r := range history {
		rows = append(rows, fmt.Sprintf("%d %s %s %s", r.Revision, r.Status, r.Chart, r.Description))
	}
	if want := []string{
		"1 superseded web-0.1.0 Install complete",
		"2 superseded web-0.1.0 Upgrade complete",
		"3 superseded web-0.1.0 Upgrade complete",
		"4 deployed web-0.1.0 Rollback to 1",
	}; !slices.Equal(rows, want) {
		t.Errorf("helm history:\n%s\nwant:\n%s", strings.Join(rows, "\n"), strings.Join(want, "\n"))
	}
	var list []struct {
		Name, Namespace, Revision, Status, Chart string
	}
	if err := json.Unmarshal([]byte(helm.must(t, "list", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != "web" || list[0].Namespace != "default" || list[0].Revision != "4" || list[0].Status != "deployed" {
		t.Errorf("helm list: %+v", list)
	}
	if out := helm.must(t, "status", "web"); !strings.Contains(out, "REVISION: 4") {
		t.Errorf("helm status:\n%s", out)
	}

	// Uninstall: every object goes, the Instances with their Workload,
	// and the release's Secrets.
	if out := helm.must(t, "uninstall", "web", "--wait", "--timeout", "2m"); !strings.Contains(out, `release "web" uninstalled`) {
		t.Errorf("helm uninstall printed %q", out)
	}
	waitFor(t, 120*time.Second, func() (bool, error) {
		out, err := s.kubectl("get", "workloads,instances,configmaps,secrets", "-l", "app.kubernetes.io/instance=web", "-o", "name")
		return err == nil && strings.TrimSpace(out) == "", nil
	})
	s.wantReleaseSecrets(t, "web")
	if out := helm.must(t, "list", "--all", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("helm list after uninstall: %q", out)
	}

	// The example: the two-tier guestbook. Its web tier is ready once it
	// reaches the kv (at the kv's hostPort on the node); a note posted
	// with the generated password is read back through another request.
	helm.must(t, "install", "gb", helmGuestbookChart, "--set", "web.replicaCount=1", "--set", "web.minReadySeconds=0")
	s.waitHelmInstances(t, "gb-guestbook-kv", "app.kubernetes.io/instance=gb,app.kubernetes.io/component=kv", 1)
	s.waitHelmInstances(t, "gb-guestbook", "app.kubernetes.io/instance=gb,app.kubernetes.io/component=web", 1)
	gb := "http://" + s.instanceIPs(t, "app.kubernetes.io/instance=gb,app.kubernetes.io/component=web", 1)[0] + ":8080/cgi-bin/"
	nettest.Eventually(t, host, gb+"hello", "Welcome to the guestbook!")
	if code, body := helmPost(t, host, gb+"notes?first", s.helmSecretValue(t, "gb-guestbook-password", "password"), "hello, helm"); code != http.StatusOK {
		t.Errorf("POST a note: %d %q", code, body)
	}
	if code, _ := helmPost(t, host, gb+"notes?second", "wrong", "x"); code != http.StatusForbidden {
		t.Errorf("POST a note with a wrong password: %d, want 403", code)
	}
	nettest.Eventually(t, host, gb+"notes?first", "hello, helm")
	helm.must(t, "uninstall", "gb")
	waitFor(t, 120*time.Second, func() (bool, error) {
		out, err := s.kubectl("get", "workloads,instances,configmaps,secrets", "-o", "name")
		return err == nil && !strings.Contains(out, "gb-"), nil
	})
}

// helmPost posts body to url from the node's namespace with the
// guestbook's X-Password header and returns the status code and body.
func helmPost(t *testing.T, host, url, password, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Password", password)
	resp, err := nettest.Client(host).Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitHelmInstances waits until the Workload has n ready replicas and
// selector exactly n live Instances, all Running; on a time-out it shows
// the Instances and the Events.
func (s *server) waitHelmInstances(t *testing.T, workload, selector string, n int) {
	t.Helper()
	want := strings.TrimSpace(strings.Repeat("Running ", n))
	deadline := time.Now().Add(120 * time.Second)
	for {
		ready, err := s.kubectl("get", "workload", workload, "-o", "jsonpath={.status.readyReplicas}/{.spec.replicas}")
		if err == nil && ready == fmt.Sprintf("%d/%d", n, n) {
			out, err := s.kubectl("get", "instances", "-l", selector, "-o",
				`jsonpath={range .items[*]}{.metadata.deletionTimestamp}|{.status.phase} {end}`)
			var live []string
			for _, f := range strings.Fields(out) {
				if phase, ok := strings.CutPrefix(f, "|"); ok {
					live = append(live, phase)
				}
			}
			if err == nil && strings.Join(live, " ") == want {
				return
			}
		}
		if time.Now().After(deadline) {
			instances, _ := s.kubectl("get", "instances", "-l", selector, "-o", "yaml")
			events, _ := s.kubectl("get", "events")
			t.Fatalf("workload %s: not %d ready Instances within 120s (ready %q)\n%s\n%s", workload, n, ready, instances, events)
		}
		time.Sleep(pollInterval)
	}
}

// helmSecretValue is one key of a Secret, decoded.
func (s *server) helmSecretValue(t *testing.T, name, key string) string {
	t.Helper()
	out := s.mustKubectl(t, "get", "secret", name, "-o", "jsonpath={.data."+key+"}")
	v, err := base64.StdEncoding.DecodeString(out)
	if err != nil {
		t.Fatalf("secret %s key %s: %v", name, key, err)
	}
	return string(v)
}

// wantReleaseSecrets checks the Secrets Helm keeps release's revisions
// in, found as Helm finds them: by the labels owner=helm,name=RELEASE.
func (s *server) wantReleaseSecrets(t *testing.T, release string, want ...string) {
	t.Helper()
	out := s.mustKubectl(t, "get", "secrets", "-l", "owner=helm,name="+release, "-o",
		`jsonpath={range .items[*]}{.metadata.name} {.type} {.metadata.labels.status} {.metadata.labels.version}{"\n"}{end}`)
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line != "" {
			got = append(got, line)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("release Secrets of %s:\n%s\nwant:\n%s", release, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// helmGetAuth fetches url from the node's namespace with basic auth and
// returns the status code and body.
func helmGetAuth(t *testing.T, host, url, user, password string) (int, string) {
	t.Helper()
	var code int
	var body string
	waitFor(t, 20*time.Second, func() (bool, error) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			return false, err
		}
		req.SetBasicAuth(user, password)
		resp, err := nettest.Client(host).Do(req)
		if err != nil {
			return false, nil
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil && !errors.Is(err, io.EOF) {
			return false, nil
		}
		code, body = resp.StatusCode, string(b)
		return true, nil
	})
	return code, body
}
