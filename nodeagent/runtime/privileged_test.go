package runtime_test

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"skiff.dev/skiff/nodeagent/bundle"
	"skiff.dev/skiff/nodeagent/runtime"
)

// TestRuncPrivileged runs a privileged bundle, with this process's
// capabilities and the node's devices as the agent gives them, and reads
// from inside: every capability this process has, no seccomp filter, no
// no_new_privs, /proc/keys not masked, and a node device beyond the
// runtime's standard ones.
func TestRuncPrivileged(t *testing.T) {
	rootfs := busyboxRootfs(t)
	r := newRunc(t).(*runtime.OCI)
	own := statusField(readFile(t, "/proc/self/status"), "CapEff")
	mask, err := strconv.ParseUint(own, 16, 64)
	if err != nil {
		t.Fatalf("CapEff %q: %v", own, err)
	}
	devices, err := bundle.HostDevices()
	if err != nil {
		t.Fatal(err)
	}
	standard := []string{"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty", "/dev/ptmx"}
	i := slices.IndexFunc(devices, func(d specs.LinuxDevice) bool { return !slices.Contains(standard, d.Path) })
	script := "ls -l /proc/keys; cat /proc/self/status"
	var extra string
	if i >= 0 {
		extra = devices[i].Path
		script = "ls -l " + extra + "; " + script
	}
	in := bundle.Input{Rootfs: rootfs, Args: []string{"sh", "-c", script}, Env: []string{"PATH=/bin"},
		Privileged: true, Capabilities: bundle.CapabilitiesOf(mask), Devices: devices}
	log := runToExit(t, r, "privileged", in)
	if got := statusField(log, "CapEff"); got != own {
		t.Errorf("CapEff %s, want this process's %s", got, own)
	}
	if mode, _ := seccompMode(log); mode != "0" {
		t.Errorf("Seccomp %s, want 0 (none)", mode)
	}
	if nnp := statusField(log, "NoNewPrivs"); nnp != "0" {
		t.Errorf("NoNewPrivs %s, want 0", nnp)
	}
	// A masked file is /dev/null bound over it: a character device.
	if keys := lineWith(log, "/proc/keys"); keys == "" || strings.HasPrefix(keys, "c") {
		t.Errorf("/proc/keys is masked or missing: %q", keys)
	}
	if dev := lineWith(log, extra); extra != "" && !strings.HasPrefix(dev, "c") && !strings.HasPrefix(dev, "b") {
		t.Errorf("node device %s is missing: %q", extra, dev)
	}
}

// lineWith is the output of the first log line of text that ends in s:
// without its time, stream and tag.
func lineWith(text, s string) string {
	for _, line := range strings.Split(text, "\n") {
		if f := strings.SplitN(line, " ", 4); len(f) == 4 && strings.HasSuffix(line, s) {
			return f[3]
		}
	}
	return ""
}

// statusField is the value of field in a /proc/PID/status text (a log
// line's prefix allowed).
func statusField(text, field string) string {
	for _, line := range strings.Split(text, "\n") {
		if _, rest, ok := strings.Cut(line, field+":"); ok {
			return strings.TrimSpace(rest)
		}
	}
	return ""
}
