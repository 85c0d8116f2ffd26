package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"skiff.dev/skiff/internal/syncbuf"
	"skiff.dev/skiff/nodeagent/bundle"
	"skiff.dev/skiff/nodeagent/logs"
	"skiff.dev/skiff/nodeagent/runtime"
	"skiff.dev/skiff/nodeagent/runtime/runtimetest"
	"skiff.dev/skiff/nodeagent/shim"
)

func TestMain(m *testing.M) {
	shim.RunIfAsked()
	os.Exit(m.Run())
}

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

// TestRuncExec: a process run in a container gives its own exit code and
// output, and runs as the container's user, in its namespaces.
func TestRuncExec(t *testing.T) {
	rootfs := busyboxRootfs(t)
	r := newRunc(t)
	ctx := context.Background()
	spec := runtime.Spec{Image: "busybox", Bundle: bundle.Input{Rootfs: rootfs, Hostname: "exec-test", Args: []string{"sleep", "1000"}, Env: []string{"PATH=/bin"}}}
	if err := r.Create(ctx, "exec", spec); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx, "exec"); err != nil {
		t.Fatal(err)
	}
	var out, errOut strings.Builder
	code, err := r.Exec(ctx, "exec", runtime.ExecOptions{Args: []string{"sh", "-c", "hostname; echo oops >&2; exit 3"}, Stdout: &out, Stderr: &errOut})
	if err != nil || code != 3 {
		t.Fatalf("exec: %d, %v; want exit code 3", code, err)
	}
	if out.String() != "exec-test\n" || errOut.String() != "oops\n" {
		t.Errorf("stdout %q stderr %q; want the container's hostname and oops", out.String(), errOut.String())
	}
	if code, err := r.Exec(ctx, "exec", runtime.ExecOptions{Args: []string{"no-such-command"}}); err != nil || code == 0 {
		t.Errorf("exec of a missing command: %d, %v; want a non-zero exit code", code, err)
	}
}

// TestRuncExecTTY: a process run on a terminal sees one (/dev/pts/N),
// takes its input through it, follows its resizes, and gives its exit
// code; a process that could not run is an error, not a code.
func TestRuncExecTTY(t *testing.T) {
	rootfs := busyboxRootfs(t)
	r := newRunc(t)
	ctx := context.Background()
	spec := runtime.Spec{Image: "busybox", Bundle: bundle.Input{Rootfs: rootfs, Args: []string{"sleep", "1000"}, Env: []string{"PATH=/bin"}}}
	if err := r.Create(ctx, "tty", spec); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx, "tty"); err != nil {
		t.Fatal(err)
	}

	var out strings.Builder
	code, err := r.Exec(ctx, "tty", runtime.ExecOptions{Args: []string{"sh", "-c", "busybox tty; exit 5"}, TTY: true, Stdout: &out})
	if err != nil || code != 5 {
		t.Fatalf("exec tty: %d, %v; want exit code 5", code, err)
	}
	if !strings.HasPrefix(out.String(), "/dev/pts/") || !strings.HasSuffix(out.String(), "\r\n") {
		t.Errorf("tty printed %q; want /dev/pts/N and the terminal's CR LF", out.String())
	}

	// An interactive shell: a resize, then stty size, then the end of input.
	stdin, typed := io.Pipe()
	sizes := make(chan runtime.TerminalSize, 1)
	shell := &syncbuf.Buffer{}
	done := make(chan error, 1)
	go func() {
		code, err := r.Exec(ctx, "tty", runtime.ExecOptions{Args: []string{"sh"}, TTY: true, Stdin: stdin, Stdout: shell, Resize: sizes})
		if err == nil && code != 0 {
			err = fmt.Errorf("exit code %d", code)
		}
		done <- err
	}()
	sizes <- runtime.TerminalSize{Width: 123, Height: 45}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(shell.String(), "45 123") {
		if time.Now().After(deadline) {
			t.Fatalf("stty size never showed the resize; the terminal shows %q", shell.String())
		}
		fmt.Fprintln(typed, "busybox stty size")
		time.Sleep(200 * time.Millisecond)
	}
	typed.Close() // ^D: the shell exits
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("interactive exec: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the shell did not end at the end of its input")
	}

	if code, err := r.Exec(ctx, "tty", runtime.ExecOptions{Args: []string{"no-such-command"}, TTY: true, Stdout: io.Discard}); err == nil ||
		!strings.HasSuffix(err.Error(), `exec failed: unable to start container process: exec: "no-such-command": executable file not found in $PATH`) {
		t.Errorf("exec of a missing command on a terminal: code %d, error %v; want the runtime's own word", code, err)
	}
}

// TestRuncExecCancelled: an exec whose context ends (its client went
// away) ends its process too, with pipes and on a terminal.
func TestRuncExecCancelled(t *testing.T) {
	rootfs := busyboxRootfs(t)
	r := newRunc(t)
	ctx := context.Background()
	spec := runtime.Spec{Image: "busybox", Bundle: bundle.Input{Rootfs: rootfs, Args: []string{"sleep", "1000"}, Env: []string{"PATH=/bin"}}}
	if err := r.Create(ctx, "cancel", spec); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx, "cancel"); err != nil {
		t.Fatal(err)
	}
	for i, tty := range []bool{false, true} {
		arg := strconv.Itoa(900 + i) // a sleep of its own to look for
		cctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(500*time.Millisecond, cancel)
		if _, err := r.Exec(cctx, "cancel", runtime.ExecOptions{Args: []string{"sleep", arg}, TTY: tty}); !errors.Is(err, context.Canceled) {
			t.Errorf("tty %v: exec cancelled: %v, want context.Canceled", tty, err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for sleeping(t, arg) {
			if time.Now().After(deadline) {
				t.Fatalf("tty %v: sleep %s still runs after its exec was cancelled", tty, arg)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// sleeping reports whether a process "sleep arg" runs on this machine.
func sleeping(t *testing.T, arg string) bool {
	t.Helper()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		cmdline, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err == nil && string(cmdline) == "sleep\x00"+arg+"\x00" {
			stat, _ := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
			if !strings.Contains(string(stat), ") Z ") { // a zombie has ended
				return true
			}
		}
	}
	return false
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
	r := newRunc(t)
	ctx := context.Background()
	// A masked file is /dev/null bind-mounted over it: a character device.
	// (/proc/kcore, masked too, does not exist on every kernel.)
	script := "echo keys=$(ls -l /proc/keys); echo timer_list=$(ls -l /proc/timer_list); grep CapBnd /proc/self/status; echo done"
	logPath := filepath.Join(t.TempDir(), "container.log")
	spec := runtime.Spec{LogPath: logPath, Bundle: bundle.Input{Rootfs: rootfs, Args: []string{"sh", "-c", script}, Env: []string{"PATH=/bin"}}}
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
	log := readLog(t, logPath)
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

// readLog returns the content of a container log, without the entries'
// timestamps and stream tags.
func readLog(t *testing.T, path string) string {
	t.Helper()
	var b strings.Builder
	if err := logs.Read(context.Background(), path, logs.Options{TailLines: -1}, &b, nil); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func waitState(t *testing.T, r runtime.Runtime, id string, want runtime.State) runtime.Status {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := r.State(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if st.State == want {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s is %s, want %s", id, st.State, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRuncLogsAndExitCode: both streams reach the log as tagged entries,
// and the exit code is the process's.
func TestRuncLogsAndExitCode(t *testing.T) {
	rootfs := busyboxRootfs(t)
	r := newRunc(t)
	ctx := context.Background()
	logPath := filepath.Join(t.TempDir(), "container.log")
	spec := runtime.Spec{LogPath: logPath, Bundle: bundle.Input{Rootfs: rootfs,
		Args: []string{"sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3"}, Env: []string{"PATH=/bin"}}}
	if err := r.Create(ctx, "logs", spec); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx, "logs"); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, r, "logs", runtime.Stopped)
	if st.ExitCode != 3 || st.FinishedAt.Before(st.StartedAt) {
		t.Errorf("stopped status %+v: want exit code 3 and finish after start", st)
	}
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	raw := string(data)
	if !strings.Contains(raw, " stdout F to-stdout\n") || !strings.Contains(raw, " stderr F to-stderr\n") {
		t.Errorf("log entries lack stream tags:\n%s", raw)
	}
	if _, err := time.Parse(time.RFC3339Nano, strings.Fields(raw)[0]); err != nil {
		t.Errorf("log entry does not start with an RFC 3339 time: %v", err)
	}
}

// TestRuncContainersOutliveTheAgent: a runtime made anew on the same root,
// as after an agent restart, finds the running container, and its exit code
// is recorded although the first runtime's process is gone.
func TestRuncContainersOutliveTheAgent(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the oci runtime needs root")
	}
	rootfs := busyboxRootfs(t)
	root := t.TempDir()
	ctx := context.Background()
	first, err := runtime.NewOCI("runc", root)
	if err != nil {
		t.Skip(err)
	}
	logPath := filepath.Join(t.TempDir(), "container.log")
	spec := runtime.Spec{LogPath: logPath, Labels: map[string]string{"skiff.dev/instance": "default/a"},
		Bundle: bundle.Input{Rootfs: rootfs, Args: []string{"sh", "-c", "echo up; exec sleep 1000"}, Env: []string{"PATH=/bin"}}}
	if err := first.Create(ctx, "survivor", spec); err != nil {
		t.Fatal(err)
	}
	if err := first.Start(ctx, "survivor"); err != nil {
		t.Fatal(err)
	}
	before := waitState(t, first, "survivor", runtime.Running)

	second, err := runtime.NewOCI("runc", root)
	if err != nil {
		t.Fatal(err)
	}
	list, err := second.List(ctx)
	if err != nil || len(list) != 1 || list[0].Labels["skiff.dev/instance"] != "default/a" {
		t.Fatalf("list after restart: %+v, %v", list, err)
	}
	st := waitState(t, second, "survivor", runtime.Running)
	if st.Pid != before.Pid || !st.StartedAt.Equal(before.StartedAt) {
		t.Errorf("after restart %+v, before %+v: want the same process and start time", st, before)
	}
	if err := second.Kill(ctx, "survivor", syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st = waitState(t, second, "survivor", runtime.Stopped)
	if st.ExitCode != 128+int(syscall.SIGKILL) {
		t.Errorf("exit code %d, want %d", st.ExitCode, 128+int(syscall.SIGKILL))
	}
	if log := readLog(t, logPath); log != "up\n" {
		t.Errorf("log %q, want %q", log, "up\n")
	}
	if err := second.Delete(ctx, "survivor"); err != nil {
		t.Fatal(err)
	}
}
