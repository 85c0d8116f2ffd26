package shim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ExecEnv carries an exec helper's job (ExecJob, as JSON) from the agent.
const ExecEnv = "_SKIFF_OCI_EXEC"

// ExecJob is a process to run on a terminal in a running container. The
// runtime runs it detached (the only way it hands over the terminal: it
// sends the terminal's master to ConsoleSocket), so the process is not the
// runtime's child once the runtime returns. The exec helper, a child
// subreaper, inherits it and waits for its exit code, as the shim does for
// the container's init and conmon does for CRI-O's execs.
type ExecJob struct {
	Runtime string   `json:"runtime"`
	Root    string   `json:"root"`
	ID      string   `json:"id"`
	Args    []string `json:"args"`
	Env     []string `json:"env,omitempty"`
	// ConsoleSocket is the unix socket the runtime sends the master to.
	ConsoleSocket string `json:"consoleSocket"`
	// PidFile is where the runtime writes the process's pid.
	PidFile string `json:"pidFile"`
}

// ExecResult is what the exec helper tells the agent on its fd 3 when the
// process has ended, or could not be run.
type ExecResult struct {
	ExitCode int    `json:"exitCode"`
	Error    string `json:"error,omitempty"`
}

// runExec is the exec helper: it runs job and reports the process's exit
// code. SIGTERM kills the process (the agent's exec was cancelled).
func runExec(arg string) int {
	out := os.NewFile(3, "result")
	report := func(res ExecResult) int {
		_ = json.NewEncoder(out).Encode(res)
		out.Close()
		return 0
	}
	var job ExecJob
	if err := json.Unmarshal([]byte(arg), &job); err != nil {
		return report(ExecResult{Error: fmt.Sprintf("exec helper: bad job: %v", err)})
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	signal.Ignore(syscall.SIGHUP, syscall.SIGINT, syscall.SIGPIPE)
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return report(ExecResult{Error: fmt.Sprintf("exec helper: become child subreaper: %v", err)})
	}
	pid, err := startDetached(job)
	if err != nil {
		return report(ExecResult{Error: err.Error()})
	}
	go func() {
		<-stop
		_ = unix.Kill(pid, unix.SIGKILL)
	}()
	return report(ExecResult{ExitCode: reap(pid)})
}

// startDetached runs the runtime's exec on a terminal, detached, and
// returns the process's pid.
func startDetached(job ExecJob) (int, error) {
	args := []string{"--root", job.Root, "--log-format", "json", "exec", "--detach", "--tty",
		"--console-socket", job.ConsoleSocket, "--pid-file", job.PidFile}
	for _, e := range job.Env {
		args = append(args, "--env", e)
	}
	cmd := exec.Command(job.Runtime, append(append(args, job.ID), job.Args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("%s exec in container %q: %w: %s", filepath.Base(job.Runtime), job.ID, err, lastRuntimeError(stderr.Bytes()))
	}
	data, err := os.ReadFile(job.PidFile)
	if err != nil {
		return 0, fmt.Errorf("exec in container %q: pid: %w", job.ID, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return 0, fmt.Errorf("exec in container %q: pid %q: %w", job.ID, data, err)
	}
	return pid, nil
}
