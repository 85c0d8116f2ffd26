package runtime_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"skiff.dev/skiff/nodeagent/bundle"
	"skiff.dev/skiff/nodeagent/runtime"
)

// TestRuncSeccomp runs a container with the default bundle and one with
// Unconfined, and reads the seccomp mode each process reports: 2 (filter)
// by default, and not 2 when unconfined, so that the filter is seen to come
// from the bundle rather than from whatever runs the test.
func TestRuncSeccomp(t *testing.T) {
	if mode, ok := seccompMode(readFile(t, "/proc/self/status")); !ok {
		t.Skip("the kernel reports no seccomp mode in /proc/self/status")
	} else if mode == "2" {
		t.Skip("the test itself runs under a seccomp filter, which every container would inherit")
	}
	rootfs := busyboxRootfs(t)
	r := newRunc(t).(*runtime.OCI)
	for _, tc := range []struct {
		id         string
		unconfined bool
	}{{"seccomp-default", false}, {"seccomp-unconfined", true}} {
		in := bundle.Input{Rootfs: rootfs, Args: []string{"cat", "/proc/self/status"}, Env: []string{"PATH=/bin"}, Unconfined: tc.unconfined}
		log := runToExit(t, r, tc.id, in)
		mode, ok := seccompMode(log)
		t.Logf("%s: Seccomp: %s", tc.id, mode)
		switch {
		case !ok:
			t.Errorf("%s: no Seccomp line in its output:\n%s", tc.id, log)
		case !tc.unconfined && mode != "2":
			t.Errorf("%s: seccomp mode %s, want 2 (filter):\n%s", tc.id, mode, log)
		case tc.unconfined && mode == "2":
			t.Errorf("%s: seccomp mode 2 (filter) although unconfined:\n%s", tc.id, log)
		}
	}
}

// runToExit creates and starts container id and waits until it has stopped
// with code 0 and its log holds the status file up to
// nonvoluntary_ctxt_switches, which the kernel prints after the Seccomp
// line. The log is read until then, not once at exit, in case the runtime
// copies output to it asynchronously.
func runToExit(t *testing.T, r *runtime.OCI, id string, in bundle.Input) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	logPath := filepath.Join(t.TempDir(), "container.log")
	if err := r.Create(ctx, id, runtime.Spec{Bundle: in, LogPath: logPath}); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := r.State(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		log, _ := os.ReadFile(logPath)
		if st.State == runtime.Stopped && st.ExitCode != 0 {
			t.Fatalf("container %q exited with %d:\n%s", id, st.ExitCode, log)
		}
		if st.State == runtime.Stopped && strings.Contains(string(log), "nonvoluntary_ctxt_switches:") {
			return string(log)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("container %q: %+v after %v:\n%s", id, st, ctx.Err(), log)
		case <-tick.C:
		}
	}
}

// seccompMode finds the value of the "Seccomp:" line of a status file in
// text. It allows a prefix before the field, such as a log line's
// timestamp and stream, and ignores Seccomp_filters.
func seccompMode(text string) (string, bool) {
	for _, line := range strings.Split(text, "\n") {
		_, rest, ok := strings.Cut(line, "Seccomp:")
		if !ok {
			continue
		}
		if f := strings.Fields(rest); len(f) > 0 {
			return f[0], true
		}
	}
	return "", false
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
