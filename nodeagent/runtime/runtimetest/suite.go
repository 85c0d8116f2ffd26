// Package runtimetest is the conformance suite every runtime.Runtime
// implementation passes: call Run from the implementation's tests.
package runtimetest

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"skiff.dev/skiff/nodeagent/runtime"
)

// Run checks the lifecycle contract on runtimes made by newRuntime; spec is
// a container that keeps running until signalled.
func Run(t *testing.T, newRuntime func(t *testing.T) runtime.Runtime, spec runtime.Spec) {
	ctx := context.Background()
	t.Run("lifecycle", func(t *testing.T) {
		r := newRuntime(t)
		spec := spec
		spec.Labels = map[string]string{"skiff.dev/instance": "default/a"}
		must(t, r.Create(ctx, "c1", spec))
		expectState(t, r, "c1", runtime.Created)
		must(t, r.Start(ctx, "c1"))
		st := expectState(t, r, "c1", runtime.Running)
		if st.Pid <= 0 || st.StartedAt.IsZero() || st.Labels["skiff.dev/instance"] != "default/a" {
			t.Errorf("running status %+v: want a pid, a start time and the labels", st)
		}
		must(t, r.Kill(ctx, "c1", syscall.SIGKILL))
		st = waitStopped(t, r, "c1")
		if st.ExitCode != 128+int(syscall.SIGKILL) {
			t.Errorf("exit code after SIGKILL %d, want %d", st.ExitCode, 128+int(syscall.SIGKILL))
		}
		must(t, r.Delete(ctx, "c1"))
		if _, err := r.State(ctx, "c1"); !errors.Is(err, runtime.ErrNotFound) {
			t.Errorf("state after delete: %v, want ErrNotFound", err)
		}
	})
	t.Run("bad transitions are rejected", func(t *testing.T) {
		r := newRuntime(t)
		must(t, r.Create(ctx, "c2", spec))
		if err := r.Create(ctx, "c2", spec); !errors.Is(err, runtime.ErrExists) {
			t.Errorf("second create: %v, want ErrExists", err)
		}
		if err := r.Kill(ctx, "c2", syscall.SIGTERM); !errors.Is(err, runtime.ErrBadState) {
			t.Errorf("kill of a created container: %v, want ErrBadState", err)
		}
		must(t, r.Start(ctx, "c2"))
		if err := r.Start(ctx, "c2"); !errors.Is(err, runtime.ErrBadState) {
			t.Errorf("second start: %v, want ErrBadState", err)
		}
		if err := r.Delete(ctx, "c2"); !errors.Is(err, runtime.ErrBadState) {
			t.Errorf("delete of a running container: %v, want ErrBadState", err)
		}
		must(t, r.Kill(ctx, "c2", syscall.SIGKILL))
		waitStopped(t, r, "c2")
		must(t, r.Delete(ctx, "c2"))
		for name, err := range map[string]error{
			"start": r.Start(ctx, "missing"), "kill": r.Kill(ctx, "missing", syscall.SIGTERM), "delete": r.Delete(ctx, "missing"),
		} {
			if !errors.Is(err, runtime.ErrNotFound) {
				t.Errorf("%s of a missing container: %v, want ErrNotFound", name, err)
			}
		}
	})
	t.Run("list", func(t *testing.T) {
		r := newRuntime(t)
		for _, id := range []string{"b", "a"} {
			must(t, r.Create(ctx, id, spec))
		}
		list, err := r.List(ctx)
		must(t, err)
		if len(list) != 2 || list[0].ID != "a" || list[1].ID != "b" {
			t.Errorf("list %+v, want a and b in order", list)
		}
	})
	t.Run("exec", func(t *testing.T) {
		r := newRuntime(t)
		must(t, r.Create(ctx, "c3", spec))
		if _, err := r.Exec(ctx, "c3", runtime.ExecOptions{Args: []string{"true"}}); !errors.Is(err, runtime.ErrBadState) {
			t.Errorf("exec in a created container: %v, want ErrBadState", err)
		}
		must(t, r.Start(ctx, "c3"))
		if code, err := r.Exec(ctx, "c3", runtime.ExecOptions{Args: []string{"sleep", "0"}}); err != nil || code != 0 {
			t.Errorf("exec sleep 0: %d, %v; want 0", code, err)
		}
		sizes := make(chan runtime.TerminalSize, 1)
		sizes <- runtime.TerminalSize{Width: 80, Height: 24}
		close(sizes)
		if code, err := r.Exec(ctx, "c3", runtime.ExecOptions{Args: []string{"sleep", "0"}, TTY: true, Resize: sizes}); err != nil || code != 0 {
			t.Errorf("exec sleep 0 on a terminal: %d, %v; want 0", code, err)
		}
		if _, err := r.Exec(ctx, "missing", runtime.ExecOptions{Args: []string{"true"}}); !errors.Is(err, runtime.ErrNotFound) {
			t.Errorf("exec in a missing container: %v, want ErrNotFound", err)
		}
		must(t, r.Kill(ctx, "c3", syscall.SIGKILL))
		waitStopped(t, r, "c3")
	})
	t.Run("version", func(t *testing.T) {
		r := newRuntime(t)
		if v, err := r.Version(ctx); err != nil || v == "" {
			t.Errorf("version %q: %v", v, err)
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func expectState(t *testing.T, r runtime.Runtime, id string, want runtime.State) runtime.Status {
	t.Helper()
	st, err := r.State(context.Background(), id)
	if err != nil || st.State != want {
		t.Fatalf("state of %s: %+v %v, want %s", id, st, err, want)
	}
	return st
}

// waitStopped polls until the container has stopped (a real process takes
// a moment to die).
func waitStopped(t *testing.T, r runtime.Runtime, id string) runtime.Status {
	t.Helper()
	for i := 0; i < 500; i++ {
		st, err := r.State(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if st.State == runtime.Stopped {
			return st
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("container %s did not stop", id)
	return runtime.Status{}
}
