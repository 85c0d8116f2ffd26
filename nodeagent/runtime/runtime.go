package runtime

import (
	"context"
	"errors"
	"io"
	"syscall"
	"time"

	"skiff.dev/skiff/nodeagent/bundle"
)

// Runtime runs containers. Implementations are safe for concurrent use.
type Runtime interface {
	// Name is the runtime's name (sim, runc, youki, ...).
	Name() string
	// Version is what the runtime reports of its own version.
	Version(ctx context.Context) (string, error)
	// Create prepares a container; it does not run it yet.
	Create(ctx context.Context, id string, spec Spec) error
	// Start runs a created container's process.
	Start(ctx context.Context, id string) error
	// Kill sends a signal to a running container's process.
	Kill(ctx context.Context, id string, sig syscall.Signal) error
	// Delete removes a created or stopped container.
	Delete(ctx context.Context, id string) error
	// State reports one container.
	State(ctx context.Context, id string) (Status, error)
	// List reports every container the runtime holds.
	List(ctx context.Context) ([]Status, error)
	// Exec runs a further process in a running container, in its
	// namespaces and cgroup, and returns its exit code. An error means the
	// process could not be run at all (or ctx ended first).
	Exec(ctx context.Context, id string, opts ExecOptions) (exitCode int, err error)
}

// ExecOptions is a process to run in a container.
type ExecOptions struct {
	// Args are the command and its arguments (no shell).
	Args []string
	// Stdin, when set, is the process's standard input.
	Stdin io.Reader
	// Stdout and Stderr receive its output (nil: discarded).
	Stdout, Stderr io.Writer
	// TTY runs the process on a terminal of its own: its stdin, stdout
	// and stderr are the terminal, whose output goes to Stdout (Stderr
	// is not used).
	TTY bool
	// Resize, with TTY, carries the terminal's sizes as the client's
	// changes; Exec reads it until it is closed or the process ends.
	Resize <-chan TerminalSize
}

// TerminalSize is a terminal's size in characters.
type TerminalSize struct {
	Width, Height uint16
}

// Spec is what to run.
type Spec struct {
	// Image is the image reference, for status reporting.
	Image string
	// Process, root file system and limits; the oci runtime writes them as
	// the bundle's config.json (ID is filled in from the container id).
	Bundle bundle.Input
	// Labels are kept with the container, e.g. the Instance it belongs to,
	// so that an agent restart can tell whose it is.
	Labels map[string]string
	// LogPath is the file the container's stdout and stderr go to, in the
	// format of package logs (rotated by size); empty discards them.
	LogPath string
}

// State is where a container is in its lifecycle.
type State string

// Container states.
const (
	Created State = "created"
	Running State = "running"
	Stopped State = "stopped"
)

// Status is one container's observed state.
type Status struct {
	ID         string
	State      State
	Pid        int
	ExitCode   int
	StartedAt  time.Time
	FinishedAt time.Time
	Labels     map[string]string
}

// Errors, for errors.Is.
var (
	ErrNotFound = errors.New("container not found")
	ErrExists   = errors.New("container already exists")
	ErrBadState = errors.New("operation not allowed in the container's state")
)
