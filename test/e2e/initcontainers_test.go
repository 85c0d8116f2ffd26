package e2e

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestInitContainers on runc: init containers run one after another, each
// to completion, before the containers start (kubectl's STATUS shows
// Init:N/M meanwhile); one that fails under restartPolicy Never fails the
// Instance, and the containers never start.
func TestInitContainers(t *testing.T) {
	s, _ := startLocalNode(t, "10.250.6.1/24")
	s.mustKubectl(t, "apply", "-f", writeFile(t, "init.yaml", `apiVersion: skiff.dev/v1alpha1
kind: Instance
metadata: {name: inits}
spec:
  terminationGracePeriodSeconds: 2
  initContainers:
  - name: first
    image: skiff.local/busybox:latest
    command: [sh, -c, 'echo first; sleep 2']
  - name: second
    image: skiff.local/busybox:latest
    command: [sh, -c, 'echo second']
  containers:
  - name: main
    image: skiff.local/busybox:latest
    command: [sh, -c, 'echo main; trap "exit 0" TERM; sleep 3600 & wait']
`))
	var sawInit bool
	waitFor(t, 90*time.Second, func() (bool, error) {
		out, err := s.kubectl("get", "instance", "inits")
		row := rowFields(out, 0, "inits")
		if err == nil && len(row) > 1 && strings.HasPrefix(row[1], "Init:") {
			sawInit = true
		}
		return err == nil && len(row) > 1 && row[1] == "Running", nil
	})
	if !sawInit {
		t.Errorf("kubectl get never showed Init:N/M while the init containers ran")
	}
	times := s.mustKubectl(t, "get", "instance", "inits", "-o",
		`jsonpath={.status.initContainerStatuses[0].state.terminated.finishedAt} {.status.initContainerStatuses[1].state.terminated.startedAt} {.status.initContainerStatuses[1].state.terminated.finishedAt} {.status.containerStatuses[0].state.running.startedAt}`)
	f := strings.Fields(times)
	if len(f) != 4 {
		t.Fatalf("times %q: want four", times)
	}
	parse := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	firstDone, secondStart, secondDone, mainStart := parse(f[0]), parse(f[1]), parse(f[2]), parse(f[3])
	if secondStart.Before(firstDone) || mainStart.Before(secondDone) {
		t.Errorf("first done %s, second %s-%s, main started %s: want each after the one before", firstDone, secondStart, secondDone, mainStart)
	}
	if out, err := exec.Command(skiffBin, "logs", "--kubeconfig", s.kubeconfig, "inits", "-c", "first").CombinedOutput(); err != nil || string(out) != "first\n" {
		t.Errorf("skiff logs -c first: %q, %v; want the init container's log", out, err)
	}
	codes := s.mustKubectl(t, "get", "instance", "inits", "-o", `jsonpath={.status.initContainerStatuses[*].state.terminated.exitCode}`)
	if codes != "0 0" {
		t.Errorf("init exit codes %q, want 0 0", codes)
	}
	s.mustKubectl(t, "delete", "instance", "inits", "--timeout=60s")

	s.mustKubectl(t, "apply", "-f", writeFile(t, "initfail.yaml", `apiVersion: skiff.dev/v1alpha1
kind: Instance
metadata: {name: initfail}
spec:
  restartPolicy: Never
  initContainers:
  - name: check
    image: skiff.local/busybox:latest
    command: [sh, -c, 'echo "no database"; exit 3']
  containers:
  - name: main
    image: skiff.local/busybox:latest
    command: [sh, -c, 'echo should not run']
`))
	waitFor(t, 90*time.Second, func() (bool, error) {
		out, err := s.kubectl("get", "instance", "initfail", "-o", "jsonpath={.status.phase}")
		return err == nil && out == "Failed", nil
	})
	row := rowFields(s.mustKubectl(t, "get", "instance", "initfail"), 0, "initfail")
	if len(row) < 2 || row[1] != "Init:Error" {
		t.Errorf("STATUS row %v, want Init:Error", row)
	}
	if state := s.mustKubectl(t, "get", "instance", "initfail", "-o", "jsonpath={.status.containerStatuses[0].state.waiting.reason}"); state != "PodInitializing" {
		t.Errorf("main container's state %q: want it never started (PodInitializing)", state)
	}
	s.mustKubectl(t, "delete", "instance", "initfail", "--timeout=60s")
}
