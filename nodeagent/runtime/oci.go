package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"skiff.dev/skiff/nodeagent/bundle"
	"skiff.dev/skiff/nodeagent/logs"
	"skiff.dev/skiff/nodeagent/shim"
)

// OCI drives a runc-compatible runtime binary (youki, runc, crun) through
// its command line: create, start, kill, delete, state, list. Each
// container has a shim (see shim.go) that owns its output and exit code,
// so the agent may restart while containers run.
type OCI struct {
	binary string
	name   string
	// shim is the executable started as each container's shim.
	shim string
	// root holds the runtime's state (state/), bundles (bundles/ID) and
	// the shims' records (shims/ID).
	root string
}

var _ Runtime = (*OCI)(nil)

// NewOCI returns a runtime driving binary (a name on $PATH or a path),
// keeping its files under root.
func NewOCI(binary, root string) (*OCI, error) {
	path, err := exec.LookPath(binary)
	if err != nil {
		return nil, fmt.Errorf("runtime %q: %w", binary, err)
	}
	for _, d := range []string{"state", "bundles", "shims"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, fmt.Errorf("runtime %q: %w", binary, err)
		}
	}
	exe, err := shim.Executable(root)
	if err != nil {
		return nil, fmt.Errorf("runtime %q: %w", binary, err)
	}
	return &OCI{binary: path, name: filepath.Base(binary), shim: exe, root: root}, nil
}

func (o *OCI) Name() string { return o.name }

// Version is the version the binary reports ("runc version 1.1.5" -> 1.1.5).
func (o *OCI) Version(ctx context.Context) (string, error) {
	out, err := o.run(ctx, "--version")
	if err != nil {
		return "", err
	}
	first, _, _ := strings.Cut(out, "\n")
	fields := strings.Fields(first)
	if len(fields) == 0 {
		return "", fmt.Errorf("runtime %s: empty --version output", o.name)
	}
	return fields[len(fields)-1], nil
}

// shimCreateTimeout bounds the runtime's create run by a shim.
const shimCreateTimeout = 2 * time.Minute

// startedFile, in a container's shim directory, holds its start time.
const startedFile = "started"

func (o *OCI) bundleDir(id string) string { return filepath.Join(o.root, "bundles", id) }
func (o *OCI) shimDir(id string) string   { return filepath.Join(o.root, "shims", id) }
func (o *OCI) stateRoot() string          { return filepath.Join(o.root, "state") }

func (o *OCI) exists(id string) bool {
	_, err := os.Stat(filepath.Join(o.stateRoot(), id))
	return err == nil
}

func (o *OCI) Create(ctx context.Context, id string, spec Spec) error {
	if o.exists(id) {
		return fmt.Errorf("container %q: %w", id, ErrExists)
	}
	in := spec.Bundle
	in.ID = id
	s := bundle.Spec(in)
	s.Annotations = spec.Labels
	dir := o.bundleDir(id)
	if err := bundle.Write(dir, s); err != nil {
		return err
	}
	shimDir := o.shimDir(id)
	_ = os.RemoveAll(shimDir) // a record of an earlier run of this id
	if err := os.MkdirAll(shimDir, 0o700); err != nil {
		return fmt.Errorf("container %q: %w", id, err)
	}
	res, err := o.startShim(ctx, shim.Job{
		Runtime: o.binary, Root: o.stateRoot(), Bundle: dir, ID: id, Dir: shimDir,
		Log: spec.LogPath, LogMaxSize: logs.DefaultMaxSize, LogFiles: logs.DefaultMaxFiles,
	})
	if err == nil && res.Error != "" {
		err = errors.New(res.Error)
	}
	if err != nil {
		o.cleanupFailedCreate(id)
		return err
	}
	return nil
}

// startShim starts the container's shim in a session of its own and
// returns what it reports once the runtime's create has run.
func (o *OCI) startShim(ctx context.Context, job shim.Job) (shim.Result, error) {
	arg, err := json.Marshal(job)
	if err != nil {
		return shim.Result{}, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return shim.Result{}, fmt.Errorf("container %q shim: %w", job.ID, err)
	}
	defer r.Close()
	// Not CommandContext: the shim outlives this call and the agent.
	cmd := exec.Command(o.shim)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), shim.Env + "=" + string(arg)}
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return shim.Result{}, fmt.Errorf("container %q shim: %w", job.ID, err)
	}
	go func() { _ = cmd.Wait() }() // reap it when it ends
	done := make(chan struct{})
	var res shim.Result
	var decodeErr error
	go func() {
		defer close(done)
		decodeErr = json.NewDecoder(r).Decode(&res)
	}()
	// Not ctx: the shim's create must finish or fail before anything is
	// cleaned up, or a container would be left with nobody reading its
	// output. The runtime's create is bounded by this instead.
	select {
	case <-time.After(shimCreateTimeout):
		_ = unix.Kill(-cmd.Process.Pid, unix.SIGKILL) // the shim's session: it and the runtime
		<-done
		return shim.Result{}, fmt.Errorf("container %q: no word from its shim within %s", job.ID, shimCreateTimeout)
	case <-done:
	}
	if decodeErr != nil {
		return shim.Result{}, fmt.Errorf("container %q shim ended without a word: %w", job.ID, decodeErr)
	}
	return res, nil
}

// cleanupFailedCreate removes whatever a failed create left: a
// half-created container and the bundle, so a retry starts clean.
func (o *OCI) cleanupFailedCreate(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = o.run(ctx, "--root", o.stateRoot(), "delete", "--force", id)
	_ = os.RemoveAll(o.bundleDir(id))
	_ = os.RemoveAll(o.shimDir(id))
}

func (o *OCI) Start(ctx context.Context, id string) error {
	if !o.exists(id) {
		return fmt.Errorf("container %q: %w", id, ErrNotFound)
	}
	if st, ok := o.recordedState(id); ok { // recorded: started already
		return fmt.Errorf("start container %q in state %s: %w", id, st.State, ErrBadState)
	}
	now := time.Now()
	if _, err := o.run(ctx, "--root", o.stateRoot(), "start", id); err != nil {
		if st, serr := o.State(ctx, id); serr == nil && st.State != Created {
			return fmt.Errorf("start container %q in state %s: %w", id, st.State, ErrBadState)
		}
		return err
	}
	stamp, _ := now.MarshalText()
	if err := os.WriteFile(filepath.Join(o.shimDir(id), startedFile), stamp, 0o600); err != nil {
		return fmt.Errorf("container %q: %w", id, err)
	}
	return nil
}

func (o *OCI) Kill(ctx context.Context, id string, sig syscall.Signal) error {
	st, err := o.State(ctx, id)
	if err != nil {
		return err
	}
	if st.State != Running {
		return fmt.Errorf("kill container %q in state %s: %w", id, st.State, ErrBadState)
	}
	_, err = o.run(ctx, "--root", o.stateRoot(), "kill", id, strconv.Itoa(int(sig)))
	return err
}

// Exec runs the process with `runc exec`: the container's process spec
// (user, environment, capabilities, no new privileges) applies to it too.
func (o *OCI) Exec(ctx context.Context, id string, opts ExecOptions) (int, error) {
	st, err := o.State(ctx, id)
	if err != nil {
		return 0, err
	}
	if st.State != Running {
		return 0, fmt.Errorf("exec in container %q in state %s: %w", id, st.State, ErrBadState)
	}
	if len(opts.Args) == 0 {
		return 0, errors.New("exec: no command")
	}
	if opts.TTY {
		return o.execTTY(ctx, id, opts)
	}
	return o.execPipes(ctx, id, opts)
}

// execDrainTimeout bounds reading an exec's output after its process
// ended: a child left behind holding the pipes must not hold the exec.
const execDrainTimeout = 2 * time.Second

// execPipes runs the process with pipes for its standard streams; the
// runtime waits for it and exits with its code.
func (o *OCI) execPipes(ctx context.Context, id string, opts ExecOptions) (int, error) {
	dir, err := os.MkdirTemp("", "skiff-exec-")
	if err != nil {
		return 0, fmt.Errorf("exec in container %q: %w", id, err)
	}
	defer os.RemoveAll(dir)
	pidFile := filepath.Join(dir, "pid")
	cmd := exec.CommandContext(ctx, o.binary, append([]string{"--root", o.stateRoot(), "exec", "--pid-file", pidFile, id}, opts.Args...)...)
	cmd.Stdout, cmd.Stderr = opts.Stdout, opts.Stderr
	cmd.WaitDelay = execDrainTimeout
	// A cancelled exec ends its process, not only the runtime that waits
	// for it. The process is the runtime's child, reaped by it only just
	// before it exits itself: the pid is not another's meanwhile.
	cmd.Cancel = func() error {
		if data, err := os.ReadFile(pidFile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && pid > 0 {
				_ = unix.Kill(pid, unix.SIGKILL)
			}
		}
		return cmd.Process.Kill()
	}
	var stdin io.WriteCloser
	if opts.Stdin != nil {
		// A pipe of our own: Wait must not wait for a client's stdin
		// after the process has ended.
		var err error
		if stdin, err = cmd.StdinPipe(); err != nil {
			return 0, fmt.Errorf("exec in container %q: %w", id, err)
		}
	}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("exec in container %q: %w", id, err)
	}
	if stdin != nil {
		// Not waited for: a read of Stdin ends when the caller closes it.
		go func() {
			_, _ = io.Copy(stdin, opts.Stdin)
			stdin.Close()
		}()
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	switch {
	case err == nil, errors.Is(err, exec.ErrWaitDelay):
		return 0, nil
	case ctx.Err() != nil:
		return 0, fmt.Errorf("exec in container %q: %w", id, ctx.Err())
	case errors.As(err, &exit) && exit.ExitCode() > 0:
		// runc exits with the process's code (255 when it could not run it).
		return exit.ExitCode(), nil
	}
	return 0, fmt.Errorf("exec in container %q: %w", id, err)
}

func (o *OCI) Delete(ctx context.Context, id string) error {
	st, err := o.State(ctx, id)
	if err != nil {
		return err
	}
	if st.State == Running {
		return fmt.Errorf("delete running container %q: %w", id, ErrBadState)
	}
	if _, err := o.run(ctx, "--root", o.stateRoot(), "delete", "--force", id); err != nil {
		return err
	}
	// A shim still recording the exit must not write into a later run's
	// directory.
	if err := o.waitShim(ctx, id); err != nil {
		return err
	}
	for _, dir := range []string{o.bundleDir(id), o.shimDir(id)} {
		if err := os.RemoveAll(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("container %q: %w", id, err)
		}
	}
	return nil
}

// ociState is the JSON `state` and `list` print.
type ociState struct {
	ID          string            `json:"id"`
	Pid         int               `json:"pid"`
	Status      string            `json:"status"`
	Created     time.Time         `json:"created"`
	Annotations map[string]string `json:"annotations"`
}

func (o *OCI) State(ctx context.Context, id string) (Status, error) {
	if !o.exists(id) {
		return Status{}, fmt.Errorf("container %q: %w", id, ErrNotFound)
	}
	if st, ok := o.recordedState(id); ok {
		return st, nil
	}
	out, err := o.run(ctx, "--root", o.stateRoot(), "state", id)
	if err != nil {
		return Status{}, err
	}
	var s ociState
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		return Status{}, fmt.Errorf("%s state %q: %w", o.name, id, err)
	}
	return o.status(s), nil
}

func (o *OCI) List(ctx context.Context) ([]Status, error) {
	out, err := o.run(ctx, "--root", o.stateRoot(), "list", "--format", "json")
	if err != nil {
		return nil, err
	}
	var states []ociState
	if strings.TrimSpace(out) != "null" {
		if err := json.Unmarshal([]byte(out), &states); err != nil {
			return nil, fmt.Errorf("%s list: %w", o.name, err)
		}
	}
	list := make([]Status, 0, len(states))
	for _, s := range states {
		list = append(list, o.status(s))
	}
	return list, nil
}

func (o *OCI) status(s ociState) Status {
	st := Status{ID: s.ID, Pid: s.Pid, Labels: s.Annotations, StartedAt: s.Created}
	if t := o.startedAt(s.ID); !t.IsZero() {
		st.StartedAt = t
	}
	switch s.Status {
	case "created", "creating":
		st.State = Created
	case "stopped":
		if rec, ok := o.exitRecord(s.ID); ok {
			st.State, st.Pid, st.ExitCode, st.FinishedAt = Stopped, 0, rec.ExitCode, rec.FinishedAt
			break
		}
		if o.shimAlive(s.ID) {
			st.State = Running // exiting: the shim has not recorded its code yet
			break
		}
		st.State, st.Pid, st.ExitCode = Stopped, 0, -1 // no record: the code is unknown
	default: // running, paused
		st.State = Running
	}
	return st
}

// recordedState is a container's state as its shim and Start recorded
// them, read without running the runtime (which costs tens of
// milliseconds): stopped once the shim recorded the exit, running once
// started. Before the start is recorded, or without a live shim, only the
// runtime knows, and ok is false.
func (o *OCI) recordedState(id string) (st Status, ok bool) {
	st = Status{ID: id, StartedAt: o.startedAt(id)}
	if rec, ok := o.exitRecord(id); ok {
		st.State, st.ExitCode, st.FinishedAt = Stopped, rec.ExitCode, rec.FinishedAt
	} else {
		// Not started on record (created, or started by a Start whose
		// record was never written), or no shim: the runtime knows.
		if st.StartedAt.IsZero() || !o.shimAlive(id) {
			return Status{}, false
		}
		data, err := os.ReadFile(filepath.Join(o.bundleDir(id), "pid"))
		if err != nil {
			return Status{}, false
		}
		if st.Pid, err = strconv.Atoi(strings.TrimSpace(string(data))); err != nil {
			return Status{}, false
		}
		st.State = Running
	}
	labels, err := o.labels(id)
	if err != nil {
		return Status{}, false
	}
	st.Labels = labels
	return st, true
}

// startedAt is when Start recorded starting the container (zero if not).
func (o *OCI) startedAt(id string) time.Time {
	var t time.Time
	if data, err := os.ReadFile(filepath.Join(o.shimDir(id), startedFile)); err == nil {
		_ = t.UnmarshalText(data)
	}
	return t
}

// exitRecord is the container's exit as its shim recorded it.
func (o *OCI) exitRecord(id string) (shim.ExitRecord, bool) {
	var rec shim.ExitRecord
	data, err := os.ReadFile(filepath.Join(o.shimDir(id), shim.ExitFile))
	return rec, err == nil && json.Unmarshal(data, &rec) == nil
}

// labels are the annotations of a container's bundle.
func (o *OCI) labels(id string) (map[string]string, error) {
	data, err := os.ReadFile(filepath.Join(o.bundleDir(id), "config.json"))
	if err != nil {
		return nil, err
	}
	var spec struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, err
	}
	return spec.Annotations, nil
}

// shimAlive reports whether the container's shim process still runs.
func (o *OCI) shimAlive(id string) bool {
	data, err := os.ReadFile(filepath.Join(o.shimDir(id), shim.PidFile))
	if err != nil {
		return false
	}
	p, err := shim.ParseProcess(string(data))
	return err == nil && p.Alive()
}

// waitShim waits for the container's shim to end, for up to ten seconds.
func (o *OCI) waitShim(ctx context.Context, id string) error {
	deadline := time.Now().Add(10 * time.Second)
	for o.shimAlive(id) {
		if time.Now().After(deadline) {
			return fmt.Errorf("container %q: its shim has not ended 10s after delete", id)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

func (o *OCI) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, o.binary, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", o.name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
