package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"skiff.dev/skiff/nodeagent/bundle"
)

// OCI drives a runc-compatible runtime binary (youki, runc, crun) through
// its command line: create, start, kill, delete, state, list.
//
// The agent process becomes a child subreaper, so each container's init
// process is re-parented to it when the runtime's create exits; a goroutine
// per container waits for it and keeps its exit code.
type OCI struct {
	binary string
	name   string
	// root holds the runtime's state (state/), bundles (bundles/ID) and
	// logs (containers/ID/container.log).
	root string

	mu      sync.Mutex
	exits   map[string]exit
	started map[string]time.Time
	// reaping marks containers whose init this process waits for: one
	// the runtime reports stopped is still Running to callers until its
	// exit code is in.
	reaping map[string]bool
}

type exit struct {
	code int
	at   time.Time
}

var _ Runtime = (*OCI)(nil)

// NewOCI returns a runtime driving binary (a name on $PATH or a path),
// keeping its files under root.
func NewOCI(binary, root string) (*OCI, error) {
	path, err := exec.LookPath(binary)
	if err != nil {
		return nil, fmt.Errorf("runtime %q: %w", binary, err)
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("runtime %q: become child subreaper: %w", binary, err)
	}
	for _, d := range []string{"state", "bundles", "containers"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, fmt.Errorf("runtime %q: %w", binary, err)
		}
	}
	return &OCI{binary: path, name: filepath.Base(binary), root: root, exits: map[string]exit{}, started: map[string]time.Time{}, reaping: map[string]bool{}}, nil
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

// LogPath is where a container's stdout and stderr go.
func (o *OCI) LogPath(id string) string {
	return filepath.Join(o.root, "containers", id, "container.log")
}

func (o *OCI) bundleDir(id string) string { return filepath.Join(o.root, "bundles", id) }

func (o *OCI) exists(id string) bool {
	_, err := os.Stat(filepath.Join(o.root, "state", id))
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
	logPath := o.LogPath(id)
	if err := os.MkdirAll(filepath.Dir(logPath), 0o700); err != nil {
		return err
	}
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("container %q log: %w", id, err)
	}
	defer log.Close()
	pidFile, runtimeLog := filepath.Join(dir, "pid"), filepath.Join(dir, "runtime.log")
	cmd := exec.CommandContext(ctx, o.binary, "--root", filepath.Join(o.root, "state"), "--log", runtimeLog,
		"create", "--bundle", dir, "--pid-file", pidFile, id)
	// The container inherits these: they must be files, not pipes that
	// the agent would wait on for as long as the container runs.
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		msg, _ := os.ReadFile(runtimeLog)
		o.cleanupFailedCreate(id)
		return fmt.Errorf("%s create %q: %w: %s", o.name, id, err, strings.TrimSpace(string(msg)))
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		return fmt.Errorf("container %q pid: %w", id, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return fmt.Errorf("container %q pid %q: %w", id, data, err)
	}
	o.mu.Lock()
	o.reaping[id] = true
	o.mu.Unlock()
	go o.wait(id, pid)
	return nil
}

// cleanupFailedCreate removes whatever a failed create left: a
// half-created container and the bundle, so a retry starts clean.
func (o *OCI) cleanupFailedCreate(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = o.run(ctx, "--root", filepath.Join(o.root, "state"), "delete", "--force", id)
	_ = os.RemoveAll(o.bundleDir(id))
}

// wait reaps the container's init process and records its exit code.
func (o *OCI) wait(id string, pid int) {
	var ws unix.WaitStatus
	var err error
	for {
		_, err = unix.Wait4(pid, &ws, 0, nil)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	code := ws.ExitStatus()
	switch {
	case err != nil:
		code = -1 // not our child after all: the code is unknown
	case ws.Signaled():
		code = 128 + int(ws.Signal())
	}
	o.mu.Lock()
	o.exits[id] = exit{code: code, at: time.Now()}
	delete(o.reaping, id)
	o.mu.Unlock()
}

func (o *OCI) Start(ctx context.Context, id string) error {
	st, err := o.State(ctx, id)
	if err != nil {
		return err
	}
	if st.State != Created {
		return fmt.Errorf("start container %q in state %s: %w", id, st.State, ErrBadState)
	}
	if _, err := o.run(ctx, "--root", filepath.Join(o.root, "state"), "start", id); err != nil {
		return err
	}
	o.mu.Lock()
	o.started[id] = time.Now()
	o.mu.Unlock()
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
	_, err = o.run(ctx, "--root", filepath.Join(o.root, "state"), "kill", id, strconv.Itoa(int(sig)))
	return err
}

func (o *OCI) Delete(ctx context.Context, id string) error {
	st, err := o.State(ctx, id)
	if err != nil {
		return err
	}
	if st.State == Running {
		return fmt.Errorf("delete running container %q: %w", id, ErrBadState)
	}
	if _, err := o.run(ctx, "--root", filepath.Join(o.root, "state"), "delete", "--force", id); err != nil {
		return err
	}
	o.mu.Lock()
	delete(o.exits, id)
	delete(o.started, id)
	o.mu.Unlock()
	for _, dir := range []string{o.bundleDir(id), filepath.Dir(o.LogPath(id))} {
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
	out, err := o.run(ctx, "--root", filepath.Join(o.root, "state"), "state", id)
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
	out, err := o.run(ctx, "--root", filepath.Join(o.root, "state"), "list", "--format", "json")
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
	o.mu.Lock()
	defer o.mu.Unlock()
	if t, ok := o.started[s.ID]; ok {
		st.StartedAt = t
	}
	switch s.Status {
	case "created", "creating":
		st.State = Created
	case "stopped":
		if o.reaping[s.ID] {
			st.State = Running // exiting: its code is not in yet
			break
		}
		st.State, st.Pid = Stopped, 0
		st.ExitCode = -1 // unknown unless this process reaped it
		if e, ok := o.exits[s.ID]; ok {
			st.ExitCode, st.FinishedAt = e.code, e.at
		}
	default: // running, paused, creating
		st.State = Running
	}
	return st
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
