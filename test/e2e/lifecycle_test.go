package e2e

import (
	"testing"
	"time"
)

// TestLifecycle on runc: a container a liveness probe gives up on runs its
// preStop hook before it gets SIGTERM, and what a container writes to its
// termination message file (the default /dev/termination-log, or its own
// terminationMessagePath) becomes its terminated state's message.
func TestLifecycle(t *testing.T) {
	s, _ := startLocalNode(t, "10.250.7.1/24")
	s.mustKubectl(t, "apply", "-f", writeFile(t, "lifecycle.yaml", `apiVersion: skiff.dev/v1alpha1
kind: Instance
metadata: {name: hooked}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 10
  containers:
  - name: main
    image: skiff.local/busybox:latest
    command: [sh, -c, 'trap "if [ -f /tmp/prestop ]; then echo prestop ran before TERM; else echo TERM without prestop; fi > /dev/termination-log; exit 0" TERM; echo > /tmp/healthy; sleep 2; rm /tmp/healthy; sleep 3600 & wait']
    livenessProbe:
      exec: {command: [cat, /tmp/healthy]}
      periodSeconds: 1
      failureThreshold: 1
    lifecycle:
      preStop:
        exec: {command: [sh, -c, 'echo > /tmp/prestop']}
---
apiVersion: skiff.dev/v1alpha1
kind: Instance
metadata: {name: farewell}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: skiff.local/busybox:latest
    command: [sh, -c, 'echo "database unreachable" > /tmp/why; exit 2']
    terminationMessagePath: /tmp/why
`))
	for name, want := range map[string]string{"hooked": "prestop ran before TERM", "farewell": "database unreachable"} {
		waitFor(t, 90*time.Second, func() (bool, error) {
			out, err := s.kubectl("get", "instance", name, "-o", "jsonpath={.status.containerStatuses[0].state.terminated.message}")
			return err == nil && out == want, nil
		})
	}
	if phase := s.mustKubectl(t, "get", "instance", "farewell", "-o", "jsonpath={.status.phase} {.status.containerStatuses[0].state.terminated.exitCode}"); phase != "Failed 2" {
		t.Errorf("farewell: %q, want Failed 2", phase)
	}
	s.mustKubectl(t, "delete", "instance", "hooked", "farewell", "--timeout=60s")
}
