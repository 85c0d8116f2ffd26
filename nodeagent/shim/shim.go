// Package shim is the small process that outlives the agent for each
// container, as conmon does for CRI-O. It runs the runtime's create with
// pipes for the container's stdout and stderr, writes them to the container
// log, becomes the parent of the container's init (it is a child
// subreaper), and records its exit code. An agent restart, even kill -9,
// leaves containers, their logs and their exit codes intact. The same
// executable is the exec helper (exec.go): the parent of a process run on
// a terminal in a container, for as long as the agent's exec lasts.
//
// The shim is its own small executable (cmd/skiff-shim, a few MB of memory
// per container): `make build` embeds it in skiff, which writes it to the
// agent's data dir. A skiff built without it (go build, go test) starts
// itself as the shim instead: RunIfAsked, called first thing in main and in
// TestMain of tests that run containers, turns the process into one.
package shim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"skiff.dev/skiff/nodeagent/logs"
)

// Env carries the shim's job, as JSON, from the agent to the shim.
const Env = "_SKIFF_OCI_SHIM"

// Job is what one shim does.
type Job struct {
	Runtime    string `json:"runtime"`
	Root       string `json:"root"`
	Bundle     string `json:"bundle"`
	ID         string `json:"id"`
	Dir        string `json:"dir"`
	Log        string `json:"log,omitempty"`
	LogMaxSize int64  `json:"logMaxSize"`
	LogFiles   int    `json:"logFiles"`
}

// Result is what the shim tells the agent on its fd 3 once create has run.
type Result struct {
	Pid   int    `json:"pid,omitempty"`
	Error string `json:"error,omitempty"`
}

// ExitRecord is the shim's exit.json.
type ExitRecord struct {
	ExitCode   int       `json:"exitCode"`
	FinishedAt time.Time `json:"finishedAt"`
}

// Files in a container's shim directory (Job.Dir).
const (
	ExitFile = "exit.json"
	PidFile  = "shim.pid"
)

// RunIfAsked runs the shim (or the exec helper) and exits when this
// process was started as one; otherwise it returns at once.
func RunIfAsked() {
	_, shim := os.LookupEnv(Env)
	_, helper := os.LookupEnv(ExecEnv)
	if shim || helper {
		Main()
	}
}

// Main runs the shim, or the exec helper, whose job is in the
// environment, and exits.
func Main() {
	if job, ok := os.LookupEnv(ExecEnv); ok {
		os.Exit(runExec(job))
	}
	job, ok := os.LookupEnv(Env)
	if !ok {
		fmt.Fprintln(os.Stderr, "skiff-shim: started by the skiff agent for each container; not meant to be run by hand")
		os.Exit(2)
	}
	os.Exit(run(job))
}

func run(arg string) int {
	sync := os.NewFile(3, "sync")
	report := func(res Result) {
		_ = json.NewEncoder(sync).Encode(res)
		sync.Close()
	}
	var job Job
	if err := json.Unmarshal([]byte(arg), &job); err != nil {
		report(Result{Error: fmt.Sprintf("shim: bad job: %v", err)})
		return 2
	}
	signal.Ignore(syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE)
	pid, out, err := create(job)
	if err != nil {
		report(Result{Error: err.Error()})
		return 1
	}
	report(Result{Pid: pid})
	code := reap(pid)
	// The container's pid namespace is gone with its init, so the pipes
	// close; a bound keeps a leaked descriptor from holding the record.
	drained := make(chan struct{})
	go func() { out.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(5 * time.Second):
	}
	rec, _ := json.Marshal(ExitRecord{ExitCode: code, FinishedAt: time.Now()})
	tmp := filepath.Join(job.Dir, ExitFile+".tmp")
	if err := os.WriteFile(tmp, rec, 0o600); err == nil {
		_ = os.Rename(tmp, filepath.Join(job.Dir, ExitFile))
	}
	return 0
}

// shimCreate runs the runtime's create with the container's output piped
// into the log, and returns the container's init pid.
func create(job Job) (int, *sync.WaitGroup, error) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return 0, nil, fmt.Errorf("shim: become child subreaper: %w", err)
	}
	self, err := Self()
	if err != nil {
		return 0, nil, fmt.Errorf("shim: %w", err)
	}
	if err := os.WriteFile(filepath.Join(job.Dir, PidFile), []byte(self.String()), 0o600); err != nil {
		return 0, nil, fmt.Errorf("shim: %w", err)
	}
	var w *logs.Writer
	if job.Log != "" {
		if err := os.MkdirAll(filepath.Dir(job.Log), 0o700); err != nil {
			return 0, nil, fmt.Errorf("container log: %w", err)
		}
		var err error
		if w, err = logs.NewWriter(job.Log, job.LogMaxSize, job.LogFiles); err != nil {
			return 0, nil, fmt.Errorf("container log: %w", err)
		}
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return 0, nil, fmt.Errorf("shim: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return 0, nil, fmt.Errorf("shim: %w", err)
	}
	pidFile, runtimeLog := filepath.Join(job.Bundle, "pid"), filepath.Join(job.Bundle, "runtime.log")
	cmd := exec.Command(job.Runtime, "--root", job.Root, "--log", runtimeLog,
		"create", "--bundle", job.Bundle, "--pid-file", pidFile, job.ID)
	// Files, not Go writers: the container inherits them as its stdout
	// and stderr, and nothing here copies them for the runtime.
	cmd.Stdout, cmd.Stderr = outW, errW
	runErr := cmd.Run()
	outW.Close()
	errW.Close()
	if runErr != nil {
		msg, _ := os.ReadFile(runtimeLog)
		return 0, nil, fmt.Errorf("%s create %q: %w: %s", filepath.Base(job.Runtime), job.ID, runErr, lastRuntimeError(msg))
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		return 0, nil, fmt.Errorf("container %q pid: %w", job.ID, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return 0, nil, fmt.Errorf("container %q pid %q: %w", job.ID, data, err)
	}
	var wg sync.WaitGroup
	for stream, r := range map[string]*os.File{logs.Stdout: outR, logs.Stderr: errR} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.Close()
			if w != nil {
				if err := w.Copy(stream, r); err != nil {
					fmt.Fprintf(os.Stderr, "skiff-shim %s: container log: %v; discarding its output from now on\n", job.ID, err)
				}
			}
			// Whatever is left (all of it without a log, the rest after a
			// failed write) is read and dropped: a pipe nobody reads would
			// kill the container with SIGPIPE.
			_, _ = io.Copy(io.Discard, r)
		}()
	}
	return pid, &wg, nil
}

// lastRuntimeError picks the messages out of the runtime's JSON log: the
// errors in order, at most the last three, so that the cause (runc's
// nsexec: "failed to update /proc/self/oom_score_adj: Permission
// denied") comes with the generic last line ("can't get final child's PID
// from pipe: EOF"). A log that is not JSON gives its last line.
func lastRuntimeError(log []byte) string {
	var errs []string
	last := ""
	for _, line := range strings.Split(strings.TrimSpace(string(log)), "\n") {
		var entry struct {
			Msg   string `json:"msg"`
			Level string `json:"level"`
		}
		switch {
		case json.Unmarshal([]byte(line), &entry) == nil && entry.Msg != "":
			if (entry.Level == "error" || entry.Level == "fatal") && !slices.Contains(errs, entry.Msg) {
				errs = append(errs, entry.Msg)
			}
		case strings.TrimSpace(line) != "":
			last = strings.TrimSpace(line)
		}
	}
	if len(errs) == 0 {
		return last
	}
	return strings.Join(errs[max(0, len(errs)-3):], "; ")
}

// reap waits for pid, reaping any other orphan re-parented to the shim on
// the way, and returns pid's exit code (128+signal when signalled).
func reap(pid int) int {
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return -1 // no children left: pid was never ours
		}
		if got != pid {
			continue
		}
		if ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ws.ExitStatus()
	}
}
