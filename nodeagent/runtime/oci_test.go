package runtime_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"skiff.dev/skiff/nodeagent/bundle"
	"skiff.dev/skiff/nodeagent/runtime"
	"skiff.dev/skiff/nodeagent/runtime/runtimetest"
)

// busyboxRootfs builds a root file system from Debian's busybox-static.
func busyboxRootfs(t *testing.T) string {
	t.Helper()
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("busybox-static is not installed (make test installs it)")
	}
	root := filepath.Join(t.TempDir(), "rootfs")
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, applet := range []string{"sh", "sleep", "echo", "cat", "grep", "ls"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", applet)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func newRunc(t *testing.T) runtime.Runtime {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the oci runtime needs root")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("runc is not installed (make test installs it)")
	}
	r, err := runtime.NewOCI("runc", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		list, _ := r.List(context.Background())
		for _, c := range list {
			_ = r.Kill(context.Background(), c.ID, 9)
			for i := 0; i < 100; i++ {
				if st, err := r.State(context.Background(), c.ID); err != nil || st.State != runtime.Running {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			_ = r.Delete(context.Background(), c.ID)
		}
	})
	return r
}

func TestRuncConformance(t *testing.T) {
	rootfs := busyboxRootfs(t)
	runtimetest.Run(t, newRunc, runtime.Spec{
		Image:  "busybox",
		Bundle: bundle.Input{Rootfs: rootfs, Args: []string{"sleep", "1000"}, Env: []string{"PATH=/bin"}},
	})
}

func TestRuncMissingBinaryIsAClearError(t *testing.T) {
	_, err := runtime.NewOCI("youki-not-installed", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "youki-not-installed") {
		t.Fatalf("NewOCI with a missing binary: %v", err)
	}
}

// TestRuncHardening runs a container and checks from inside that kernel
// paths are masked and a dropped capability is absent.
func TestRuncHardening(t *testing.T) {
	rootfs := busyboxRootfs(t)
	r := newRunc(t).(*runtime.OCI)
	ctx := context.Background()
	// A masked file is /dev/null bind-mounted over it: a character device.
	// (/proc/kcore, masked too, does not exist on every kernel.)
	script := "echo keys=$(ls -l /proc/keys); echo timer_list=$(ls -l /proc/timer_list); grep CapBnd /proc/self/status; echo done"
	spec := runtime.Spec{Bundle: bundle.Input{Rootfs: rootfs, Args: []string{"sh", "-c", script}, Env: []string{"PATH=/bin"}}}
	if err := r.Create(ctx, "hard", spec); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx, "hard"); err != nil {
		t.Fatal(err)
	}
	var st runtime.Status
	deadline := time.Now().Add(20 * time.Second)
	for {
		var err error
		if st, err = r.State(ctx, "hard"); err != nil {
			t.Fatal(err)
		}
		if st.State == runtime.Stopped || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	out, _ := os.ReadFile(r.LogPath("hard"))
	log := string(out)
	if st.State != runtime.Stopped || st.ExitCode != 0 || !strings.Contains(log, "done") || !strings.Contains(log, "CapBnd:") {
		t.Fatalf("container did not finish: %+v\n%s", st, log)
	}
	for _, p := range []string{"keys", "timer_list"} {
		if !strings.Contains(log, p+"=c") {
			t.Errorf("/proc/%s is not masked inside the container:\n%s", p, log)
		}
	}
	// CAP_SYS_ADMIN is bit 21: the bounding set must not have it.
	for _, line := range strings.Split(log, "\n") {
		if strings.HasPrefix(line, "CapBnd:") {
			mask, err := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(line, "CapBnd:")), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			if mask&(1<<21) != 0 {
				t.Errorf("CAP_SYS_ADMIN is in the bounding set %x", mask)
			}
			if mask&(1<<0) == 0 {
				t.Errorf("CAP_CHOWN, a default, is missing from %x", mask)
			}
		}
	}
}
