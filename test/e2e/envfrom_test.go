package e2e

import (
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestEnvFromSecret: a Secret made with kubectl reaches a Workload's
// container on runc as a variable; an Instance whose Secret does not exist
// yet waits in CreateContainerConfigError (kubectl's STATUS column) and
// starts by itself once the Secret is created. No value reaches the
// server's log or an Event.
func TestEnvFromSecret(t *testing.T) {
	s, _ := startLocalNode(t, "10.250.4.1/24")
	const token = "token-e2e-5d72b9"

	// The README's "A password from a Secret", verbatim.
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(readme), "### A password from a Secret\n")
	section, _, _ = strings.Cut(section, "\n### ")
	create, _, _ := strings.Cut(section[strings.Index(section, "kubectl create secret"):], "\n")
	_, rest, ok := strings.Cut(section, "kubectl apply -f - <<YAML\n")
	manifest, _, ok2 := strings.Cut(rest, "\nYAML\n")
	password, _ := strings.CutPrefix(create[strings.Index(create, "password="):], "password=")
	if !ok || !ok2 || !strings.Contains(manifest, "secretKeyRef") || password == "" {
		t.Fatal(`README.md: "A password from a Secret" has no kubectl create secret and apply example`)
	}
	s.mustKubectl(t, strings.Fields(create)[1:]...)
	s.mustKubectl(t, "apply", "-f", writeFile(t, "app.yaml", manifest))
	s.waitInstances(t, "app", 1, "Running", "skiff.local/busybox:latest")
	inst := strings.TrimSpace(s.mustKubectl(t, "get", "instances", "-l", "app=app", "-o", "jsonpath={.items[0].metadata.name}"))
	waitLogs(t, s, inst, fmt.Sprintf("the password has %d characters\n", len(password)))

	s.mustKubectl(t, "apply", "-f", writeFile(t, "late.yaml", `apiVersion: skiff.dev/v1alpha1
kind: Instance
metadata: {name: late, namespace: default}
spec:
  nodeName: local
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: skiff.local/busybox:latest
    command: [sh, -c, 'echo "token=$TOKEN"; sleep 3600']
    env:
    - name: TOKEN
      valueFrom: {secretKeyRef: {name: late, key: token}}
`))
	waitFor(t, 60*time.Second, func() (bool, error) {
		out, err := s.kubectl("get", "instances", "late")
		row := rowFields(out, 0, "late")
		return err == nil && len(row) > 1 && row[1] == "CreateContainerConfigError", nil
	})
	if msg := s.mustKubectl(t, "get", "instance", "late", "-o", "jsonpath={.status.containerStatuses[0].state.waiting.message}"); msg != `secret "late" not found` {
		t.Errorf("waiting message %q, want %q", msg, `secret "late" not found`)
	}
	s.mustKubectl(t, "create", "secret", "generic", "late", "--from-literal=token="+token)
	s.waitPhase(t, "late", "Running")
	waitLogs(t, s, "late", "token="+token+"\n")

	events := s.mustKubectl(t, "get", "events", "-o", "json")
	if !strings.Contains(events, `Error: secret \"late\" not found`) {
		t.Errorf("no Failed Event naming the missing Secret in:\n%s", events)
	}
	serverLog, err := os.ReadFile(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	for what, text := range map[string]string{"the server's log": string(serverLog), "the Events": events} {
		for _, v := range []string{password, token} {
			if strings.Contains(text, v) || strings.Contains(text, base64.StdEncoding.EncodeToString([]byte(v))) {
				t.Errorf("a Secret's value %q is in %s", v, what)
			}
		}
	}
	s.mustKubectl(t, "delete", "workload", "app", "--timeout=60s")
	s.mustKubectl(t, "delete", "instance", "late", "--timeout=60s")
}

// waitLogs waits until `skiff logs` of the Instance prints want.
func waitLogs(t *testing.T, s *server, inst, want string) {
	t.Helper()
	var got string
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := exec.Command(skiffBin, "logs", "--kubeconfig", s.kubeconfig, inst).CombinedOutput()
		if got = string(out); err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("skiff logs %s: %q, want %q", inst, got, want)
		}
		time.Sleep(pollInterval)
	}
}
