package e2e

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// usageInstanceYAML is an Instance bound to node running script in
// busybox, with a memory limit (empty: none) and restartPolicy Never.
func usageInstanceYAML(name, node, memoryLimit, script string) string {
	limits := ""
	if memoryLimit != "" {
		limits = fmt.Sprintf("\n    resources:\n      limits:\n        memory: %s", memoryLimit)
	}
	return fmt.Sprintf(`apiVersion: skiff.dev/v1alpha1
kind: Instance
metadata:
  name: %s
  namespace: default
spec:
  nodeName: %s
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: skiff.local/busybox:latest
    command: ["sh", "-c", %q]%s
`, name, node, script, limits)
}

// topRow is the row of name in skiff top's output, as fields.
func topRow(out, name string) []string {
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == name {
			return f
		}
	}
	return nil
}

// millicoresOf reads "250m".
func millicoresOf(s string) int {
	n, err := strconv.Atoi(strings.TrimSuffix(s, "m"))
	if err != nil || !strings.HasSuffix(s, "m") {
		return -1
	}
	return n
}

// TestTopAndOOMKilled: on runc, a container that burns CPU shows it in
// `skiff top instances` and its node in `skiff top nodes`; one that
// allocates past its memory limit ends OOMKilled, as the kubelet says it.
func TestTopAndOOMKilled(t *testing.T) {
	s, _ := startLocalNode(t, "10.250.7.1/24")
	t.Cleanup(func() { // before the agent stops: remove the containers and their mounts
		_, _ = s.kubectl("delete", "instances", "--all", "--timeout=60s")
	})
	s.mustKubectl(t, "apply", "-f", writeFile(t, "burn.yaml", usageInstanceYAML("burn", "local", "", "while :; do :; done")))
	// The shell holds the 100 MB a command substitution reads: past the
	// 32Mi limit, the kernel's OOM killer ends it.
	hog := `x=$(head -c 100000000 /dev/zero | tr '\0' a); echo survived ${#x}`
	s.mustKubectl(t, "apply", "-f", writeFile(t, "hog.yaml", usageInstanceYAML("hog", "local", "32Mi", hog)))
	// Restarted after its OOM kill, it says so in lastState.
	s.mustKubectl(t, "apply", "-f", writeFile(t, "hog-again.yaml",
		strings.Replace(usageInstanceYAML("hog-again", "local", "32Mi", hog), "restartPolicy: Never", "restartPolicy: Always", 1)))
	s.waitPhase(t, "burn", "Running")

	top := func(args ...string) (string, error) {
		out, err := exec.Command(skiffBin, append([]string{"top", "--kubeconfig", s.kubeconfig}, args...)...).CombinedOutput()
		return string(out), err
	}
	var out string
	waitFor(t, 60*time.Second, func() (bool, error) {
		var err error
		out, err = top("instances")
		row := topRow(out, "burn")
		// A busy loop uses a whole core; on a shared machine, at least a tenth.
		return err == nil && len(row) == 3 && millicoresOf(row[1]) >= 100 && strings.HasSuffix(row[2], "Mi"), nil
	})
	t.Logf("skiff top instances:\n%s", out)
	if all, err := top("instances", "-A"); err != nil || !strings.HasPrefix(all, "NAMESPACE") || topRow(all, "default") == nil {
		t.Errorf("skiff top instances -A: %v\n%s", err, all)
	}
	nodes, err := top("nodes")
	t.Logf("skiff top nodes:\n%s", nodes)
	row := topRow(nodes, "local")
	if err != nil || len(row) != 5 || millicoresOf(row[1]) < 100 || !strings.HasSuffix(row[2], "%") || !strings.HasSuffix(row[3], "Mi") {
		t.Errorf("skiff top nodes: %v\n%s", err, nodes)
	}

	s.waitPhase(t, "hog", "Failed")
	reason := s.mustKubectl(t, "get", "instance", "hog", "-o", "jsonpath={.status.containerStatuses[0].state.terminated.reason}")
	code := s.mustKubectl(t, "get", "instance", "hog", "-o", "jsonpath={.status.containerStatuses[0].state.terminated.exitCode}")
	if reason != "OOMKilled" || code != "137" {
		t.Errorf("hog terminated with reason %q, exit code %s; want OOMKilled, 137", reason, code)
	}
	waitFor(t, 60*time.Second, func() (bool, error) {
		out, err := s.kubectl("get", "instance", "hog-again", "-o",
			`jsonpath={.status.containerStatuses[0].lastState.terminated.reason}/{.status.containerStatuses[0].lastState.terminated.exitCode}`)
		return err == nil && out == "OOMKilled/137", nil
	})
}
