package runtime

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"skiff.dev/skiff/nodeagent/logs"
)

// SimConfig tunes the simulated runtime.
type SimConfig struct {
	// StartDelay is how long Start takes.
	StartDelay time.Duration
	// FailureRate is the probability (0-1) that Start fails.
	FailureRate float64
}

// Sim is an in-memory runtime: containers are state machines with no
// processes. One process can host thousands of simulated nodes with it.
//
// A simulated process runs until it is signalled, unless its environment
// has SimExitCodeEnv=N: then it exits with code N as soon as it starts,
// which lets tests drive restart policies without real processes.
type Sim struct {
	cfg SimConfig
	mu  sync.Mutex
	ctr map[string]*Status
	// logs holds the log path and args of containers that log.
	logs map[string]Spec
	pid  int
}

var _ Runtime = (*Sim)(nil)

// SimExitCodeEnv makes a simulated container exit at once with its value.
const SimExitCodeEnv = "SKIFF_SIM_EXIT_CODE"

// ErrSimulatedFailure is the failure Start injects at FailureRate.
var ErrSimulatedFailure = errors.New("simulated start failure")

// NewSim returns an empty simulated runtime.
func NewSim(cfg SimConfig) *Sim {
	return &Sim{cfg: cfg, ctr: map[string]*Status{}, logs: map[string]Spec{}, pid: 1000}
}

func (s *Sim) Name() string { return "sim" }

func (s *Sim) Version(context.Context) (string, error) { return "1.0.0", nil }

func (s *Sim) Create(_ context.Context, id string, spec Spec) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.ctr[id]; ok {
		return fmt.Errorf("container %q: %w", id, ErrExists)
	}
	s.ctr[id] = &Status{ID: id, State: Created, Labels: maps.Clone(spec.Labels), ExitCode: exitCodeFromEnv(spec.Bundle.Env)}
	if spec.LogPath != "" {
		s.logs[id] = spec
	}
	return nil
}

func (s *Sim) Start(ctx context.Context, id string) error {
	if s.cfg.StartDelay > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(s.cfg.StartDelay):
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.get(id)
	if err != nil {
		return err
	}
	if c.State != Created {
		return fmt.Errorf("start container %q in state %s: %w", id, c.State, ErrBadState)
	}
	if s.cfg.FailureRate > 0 && rand.Float64() < s.cfg.FailureRate {
		c.State, c.ExitCode, c.FinishedAt = Stopped, 128, time.Now()
		return fmt.Errorf("start container %q: %w", id, ErrSimulatedFailure)
	}
	s.pid++
	c.State, c.Pid, c.StartedAt = Running, s.pid, time.Now()
	if c.ExitCode >= 0 {
		c.State, c.Pid, c.FinishedAt = Stopped, 0, c.StartedAt
	}
	if spec, ok := s.logs[id]; ok {
		return simLog(spec, fmt.Sprintf("sim: started %q\n", spec.Bundle.Args))
	}
	return nil
}

// simLog appends line to the container's log as its stdout.
func simLog(spec Spec, line string) error {
	if err := os.MkdirAll(filepath.Dir(spec.LogPath), 0o700); err != nil {
		return fmt.Errorf("sim log: %w", err)
	}
	w, err := logs.NewWriter(spec.LogPath, logs.DefaultMaxSize, logs.DefaultMaxFiles)
	if err != nil {
		return fmt.Errorf("sim log: %w", err)
	}
	if err := w.Copy(logs.Stdout, strings.NewReader(line)); err != nil {
		w.Close()
		return fmt.Errorf("sim log: %w", err)
	}
	return w.Close()
}

func (s *Sim) Kill(_ context.Context, id string, sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.get(id)
	if err != nil {
		return err
	}
	if c.State != Running {
		return fmt.Errorf("kill container %q in state %s: %w", id, c.State, ErrBadState)
	}
	// A simulated process dies of any signal, as an unhandled one would.
	c.State, c.Pid, c.ExitCode, c.FinishedAt = Stopped, 0, 128+int(sig), time.Now()
	return nil
}

// Exec of a simulated container runs nothing and succeeds: the container
// answers every command (a probe, say) as a healthy one would.
func (s *Sim) Exec(_ context.Context, id string, opts ExecOptions) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.get(id)
	if err != nil {
		return 0, err
	}
	if c.State != Running {
		return 0, fmt.Errorf("exec in container %q in state %s: %w", id, c.State, ErrBadState)
	}
	if len(opts.Args) == 0 {
		return 0, errors.New("exec: no command")
	}
	return 0, nil
}

func (s *Sim) Delete(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.get(id)
	if err != nil {
		return err
	}
	if c.State == Running {
		return fmt.Errorf("delete running container %q: %w", id, ErrBadState)
	}
	delete(s.ctr, id)
	delete(s.logs, id)
	return nil
}

func (s *Sim) State(_ context.Context, id string) (Status, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.get(id)
	if err != nil {
		return Status{}, err
	}
	return clone(c), nil
}

func (s *Sim) List(context.Context) ([]Status, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Status, 0, len(s.ctr))
	for _, c := range s.ctr {
		out = append(out, clone(c))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (s *Sim) get(id string) (*Status, error) {
	c, ok := s.ctr[id]
	if !ok {
		return nil, fmt.Errorf("container %q: %w", id, ErrNotFound)
	}
	return c, nil
}

func clone(c *Status) Status {
	out := *c
	out.Labels = maps.Clone(c.Labels)
	return out
}

// exitCodeFromEnv is the SimExitCodeEnv value, or -1 to run until killed.
func exitCodeFromEnv(env []string) int {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, SimExitCodeEnv+"="); ok {
			if code, err := strconv.Atoi(v); err == nil && code >= 0 {
				return code
			}
		}
	}
	return -1
}
