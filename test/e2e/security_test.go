package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Capability numbers, as /proc/PID/status's CapEff mask has them.
const (
	capKill           = 5
	capNetBindService = 10
	capNetAdmin       = 12
	capNetRaw         = 13
)

// TestSecurityContext on runc, seen from inside the containers (their own
// output, read with `skiff logs`): runAsUser and runAsGroup over the
// image's root, the Instance's settings under each container's,
// readOnlyRootFilesystem, allowPrivilegeEscalation (no_new_privs),
// capabilities added and dropped, and both seccomp profiles. Then what the
// node refuses: runAsNonRoot with a root image, and a privileged container
// on an agent without --allow-privileged, both waiting in
// CreateContainerConfigError.
func TestSecurityContext(t *testing.T) {
	s, _ := startLocalNode(t, "10.250.9.1/24")
	// Each container prints what it sees, then "done", then waits.
	const wait = `echo done; trap "exit 0" TERM; sleep 3600 & wait`
	s.mustKubectl(t, "apply", "-f", writeFile(t, "sec.yaml", `apiVersion: skiff.dev/v1alpha1
kind: Instance
metadata: {name: sec}
spec:
  terminationGracePeriodSeconds: 2
  securityContext:
    runAsUser: 1000
    runAsGroup: 2000
  containers:
  - name: user
    image: skiff.local/busybox:latest
    command: [sh, -c, 'echo "uid=$(id -u) gid=$(id -g)"; grep -E "^(NoNewPrivs|Seccomp):" /proc/self/status; `+wait+`']
  - name: defaults
    image: skiff.local/busybox:latest
    securityContext:
      runAsUser: 0
      seccompProfile: {type: RuntimeDefault}
    command: [sh, -c, 'echo "uid=$(id -u)"; grep -E "^(NoNewPrivs|Seccomp|CapEff):" /proc/self/status; `+wait+`']
  - name: escalate
    image: skiff.local/busybox:latest
    securityContext: {runAsUser: 0, allowPrivilegeEscalation: true}
    command: [sh, -c, 'grep -E "^(NoNewPrivs|Seccomp):" /proc/self/status; `+wait+`']
  - name: caps
    image: skiff.local/busybox:latest
    securityContext:
      runAsUser: 0
      capabilities: {drop: [ALL], add: [CAP_NET_BIND_SERVICE, KILL]}
    command: [sh, -c, 'grep -E "^CapEff:" /proc/self/status; `+wait+`']
  - name: rofs
    image: skiff.local/busybox:latest
    securityContext: {runAsUser: 0, readOnlyRootFilesystem: true}
    command: [sh, -c, 'exec 2>&1; echo > /written; echo > /tmp/written; echo > /dev/shm/written && echo "/dev/shm writable"; `+wait+`']
`))
	s.waitPhase(t, "sec", "Running")
	logs := map[string]string{}
	for _, c := range []string{"user", "defaults", "escalate", "caps", "rofs"} {
		logs[c] = containerLog(t, s, "sec", c)
	}
	status := func(c, field string) string {
		for _, line := range strings.Split(logs[c], "\n") {
			if v, ok := strings.CutPrefix(line, field+":"); ok {
				return strings.TrimSpace(v)
			}
		}
		t.Errorf("container %s printed no %s in:\n%s", c, field, logs[c])
		return ""
	}

	if !strings.HasPrefix(logs["user"], "uid=1000 gid=2000\n") {
		t.Errorf("user: %q, want the Instance's runAsUser and runAsGroup over the image's root", logs["user"])
	}
	if !strings.HasPrefix(logs["defaults"], "uid=0\n") {
		t.Errorf("defaults: %q, want the container's runAsUser 0 over the Instance's", logs["defaults"])
	}
	for c, want := range map[string][2]string{
		"user":     {"1", "2"}, // the node's filter by default
		"defaults": {"1", "2"}, // and as RuntimeDefault
		"escalate": {"0", "2"},
	} {
		if nnp, mode := status(c, "NoNewPrivs"), status(c, "Seccomp"); nnp != want[0] || mode != want[1] {
			t.Errorf("%s: NoNewPrivs %s Seccomp %s, want %s %s", c, nnp, mode, want[0], want[1])
		}
	}
	defaults, caps := capMask(t, status("defaults", "CapEff")), capMask(t, status("caps", "CapEff"))
	if defaults&(1<<capNetRaw) == 0 || defaults&(1<<capNetAdmin) != 0 {
		t.Errorf("default CapEff %x: want NET_RAW and not NET_ADMIN", defaults)
	}
	if want := uint64(1<<capNetBindService | 1<<capKill); caps != want {
		t.Errorf("caps CapEff %x: want only NET_BIND_SERVICE and KILL (%x) after dropping ALL", caps, want)
	}
	rofs := logs["rofs"]
	if !strings.Contains(rofs, "/written: Read-only file system") || !strings.Contains(rofs, "/tmp/written: Read-only file system") ||
		!strings.Contains(rofs, "/dev/shm writable") {
		t.Errorf("rofs: %q, want / and /tmp read-only and /dev/shm writable", rofs)
	}
	s.mustKubectl(t, "delete", "instance", "sec", "--timeout=60s")

	// Refused: they wait, and kubectl's STATUS says why.
	s.mustKubectl(t, "apply", "-f", writeFile(t, "refused.yaml", `apiVersion: skiff.dev/v1alpha1
kind: Instance
metadata: {name: nonroot}
spec:
  securityContext: {runAsNonRoot: true}
  containers:
  - name: main
    image: skiff.local/busybox:latest
    command: [sh, -c, 'echo should not run']
---
apiVersion: skiff.dev/v1alpha1
kind: Instance
metadata: {name: netadmin}
spec:
  containers:
  - name: main
    image: skiff.local/busybox:latest
    securityContext: {capabilities: {add: [NET_ADMIN]}}
    command: [sh, -c, 'echo should not run']
---
apiVersion: skiff.dev/v1alpha1
kind: Instance
metadata: {name: unconfined}
spec:
  securityContext: {seccompProfile: {type: Unconfined}}
  containers:
  - name: main
    image: skiff.local/busybox:latest
    command: [sh, -c, 'echo should not run']
---
apiVersion: skiff.dev/v1alpha1
kind: Instance
metadata: {name: priv}
spec:
  containers:
  - name: main
    image: skiff.local/busybox:latest
    securityContext: {privileged: true}
    command: [sh, -c, 'echo should not run']
`))
	for name, msg := range map[string]string{
		"nonroot":    `container has runAsNonRoot and image will run as root (instance: "default/nonroot", container: main)`,
		"priv":       "privileged containers are not allowed on this node (agent --allow-privileged)",
		"netadmin":   "adding capabilities beyond the default set (NET_ADMIN) is not allowed on this node (agent --allow-privileged)",
		"unconfined": "seccompProfile Unconfined is not allowed on this node (agent --allow-privileged)",
	} {
		waitFor(t, 60*time.Second, func() (bool, error) {
			out, err := s.kubectl("get", "instance", name)
			row := rowFields(out, 0, name)
			return err == nil && len(row) > 1 && row[1] == "CreateContainerConfigError", nil
		})
		if got := s.mustKubectl(t, "get", "instance", name, "-o", "jsonpath={.status.containerStatuses[0].state.waiting.message}"); got != msg {
			t.Errorf("%s: waiting message %q, want %q", name, got, msg)
		}
		if phase := s.mustKubectl(t, "get", "instance", name, "-o", "jsonpath={.status.phase}"); phase != "Pending" {
			t.Errorf("%s: phase %s, want Pending", name, phase)
		}
	}
	if events := s.mustKubectl(t, "get", "events", "-o", "json"); !strings.Contains(events, "Error: privileged containers are not allowed on this node") {
		t.Errorf("no Failed Event for the privileged container in:\n%s", events)
	}
	s.mustKubectl(t, "delete", "instance", "nonroot", "priv", "netadmin", "unconfined", "--timeout=60s")
}

// TestPrivilegedContainer: on an agent started with
// --agent-allow-privileged a privileged container runs, and sees from
// inside every capability the agent has, no seccomp filter, no
// no_new_privs, /proc/keys unmasked and the node's devices.
func TestPrivilegedContainer(t *testing.T) {
	s, _ := startLocalNode(t, "10.250.10.1/24", "--agent-allow-privileged")
	// A device of the node's that no container gets by default.
	device := ""
	if entries, err := os.ReadDir("/dev"); err == nil {
		for _, e := range entries {
			switch e.Name() {
			case "null", "zero", "full", "random", "urandom", "tty", "ptmx", "console":
				continue
			}
			if e.Type()&os.ModeCharDevice != 0 {
				device = "/dev/" + e.Name()
				break
			}
		}
	}
	s.mustKubectl(t, "apply", "-f", writeFile(t, "priv.yaml", fmt.Sprintf(`apiVersion: skiff.dev/v1alpha1
kind: Instance
metadata: {name: priv}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: skiff.local/busybox:latest
    securityContext: {privileged: true}
    command: [sh, -c, 'grep -E "^(CapEff|NoNewPrivs|Seccomp):" /proc/self/status; ls -l /proc/keys %s; echo done; trap "exit 0" TERM; sleep 3600 & wait']
`, device)))
	s.waitPhase(t, "priv", "Running")
	out := containerLog(t, s, "priv", "main")
	agent, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.pid()))
	if err != nil {
		t.Fatal(err)
	}
	field := func(text, name string) string {
		for _, line := range strings.Split(text, "\n") {
			if v, ok := strings.CutPrefix(line, name+":"); ok {
				return strings.TrimSpace(v)
			}
		}
		return ""
	}
	if got, want := field(out, "CapEff"), field(string(agent), "CapEff"); got == "" || got != want {
		t.Errorf("CapEff %q, want the agent's %q", got, want)
	}
	if nnp, mode := field(out, "NoNewPrivs"), field(out, "Seccomp"); nnp != "0" || mode != "0" {
		t.Errorf("NoNewPrivs %s Seccomp %s, want 0 0", nnp, mode)
	}
	// Masked, /proc/keys would be /dev/null bound over it: "crw-rw-rw-".
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasSuffix(line, " /proc/keys") && strings.HasPrefix(line, "c"):
			t.Errorf("/proc/keys is masked: %q", line)
		case device != "" && strings.HasSuffix(line, " "+device) && !strings.HasPrefix(line, "c"):
			t.Errorf("node device %s: %q", device, line)
		}
	}
	if device != "" && !strings.Contains(out, " "+device+"\n") {
		t.Errorf("node device %s is missing:\n%s", device, out)
	}
	s.mustKubectl(t, "delete", "instance", "priv", "--timeout=60s")
}

// containerLog waits until container c of Instance inst has printed
// "done" and returns what it printed before.
func containerLog(t *testing.T, s *server, inst, c string) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := exec.Command(skiffBin, "logs", "--kubeconfig", s.kubeconfig, "-c", c, inst).CombinedOutput()
		if got := string(out); err == nil && strings.HasSuffix(got, "done\n") {
			t.Logf("%s/%s:\n%s", inst, c, got)
			return strings.TrimSuffix(got, "done\n")
		}
		if time.Now().After(deadline) {
			t.Fatalf("skiff logs -c %s %s: %q (%v), want it to end in done", c, inst, out, err)
		}
		time.Sleep(pollInterval)
	}
}

// capMask reads a capability mask as /proc/PID/status prints it (hex).
func capMask(t *testing.T, hex string) uint64 {
	t.Helper()
	m, err := strconv.ParseUint(hex, 16, 64)
	if err != nil {
		t.Errorf("capability mask %q: %v", hex, err)
	}
	return m
}
