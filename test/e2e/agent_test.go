package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAgentJoins runs `skiff agent` against `skiff server` and checks with
// kubectl that its Node is registered, Ready, with capacity, and that its
// Lease is renewed.
func TestAgentJoins(t *testing.T) {
	s := startServer(t, t.TempDir(), "127.0.0.1:0")
	agent := exec.Command(skiffBin, "agent",
		"--server", s.url, "--join-token", filepath.Join(s.dataDir, "join-token"),
		"--data-dir", t.TempDir(), "--node-name", "e2e-node",
		"--labels", "zone=a", "--taints", "dedicated=e2e:NoSchedule", "--lease-interval", "200ms",
		"--runtime", "sim", "--listen", "127.0.0.1:0", "--gossip-bind", "127.0.0.1:0")
	var out strings.Builder
	agent.Stdout, agent.Stderr = &out, &out
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = agent.Process.Signal(syscall.SIGTERM)
		_ = agent.Wait()
		if t.Failed() {
			t.Logf("agent output:\n%s", out.String())
		}
	})

	waitFor(t, 60*time.Second, func() (bool, error) {
		phase, err := s.kubectl("get", "node", "e2e-node", "-o", "jsonpath={.status.phase}")
		return err == nil && phase == "Ready", nil
	})
	wide := s.mustKubectl(t, "get", "no", "e2e-node", "-o", "wide")
	if !strings.Contains(wide, "e2e-node") || !strings.Contains(wide, "Ready") {
		t.Errorf("kubectl get no -o wide:\n%s", wide)
	}
	cpu := s.mustKubectl(t, "get", "node", "e2e-node", "-o", "jsonpath={.status.capacity.cpu}")
	if cpu == "" {
		t.Errorf("node has no cpu capacity")
	}
	if got := s.mustKubectl(t, "get", "node", "e2e-node", "-o", "jsonpath={.metadata.labels.zone} {.spec.taints[0].key}"); got != "a dedicated" {
		t.Errorf("labels and taints from flags: %q", got)
	}
	renew := func() string {
		r, _ := s.kubectl("get", "lease", "-n", "skiff-node-lease", "e2e-node", "-o", "jsonpath={.spec.renewTime}")
		return r
	}
	var first string
	waitFor(t, 30*time.Second, func() (bool, error) { first = renew(); return first != "", nil })
	waitFor(t, 30*time.Second, func() (bool, error) {
		r := renew()
		return r != "" && r != first, nil
	})
}
