package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"skiff.dev/skiff/nodeagent/shim"
)

// terminalDrainTimeout bounds reading a terminal's output after its
// process ended: a child left behind holding the terminal must not hold
// the exec open.
const terminalDrainTimeout = 2 * time.Second

// helperStopTimeout is how long a cancelled exec waits for the exec
// helper to kill its process and report, before it kills the helper.
const helperStopTimeout = 5 * time.Second

// execTTY runs the process on a terminal of its own. The runtime does this
// only detached, sending the terminal's master over a unix socket
// (--console-socket); the exec helper (package shim) runs it and, being the
// process's subreaper once the runtime returns, reports its exit code.
func (o *OCI) execTTY(ctx context.Context, id string, opts ExecOptions) (int, error) {
	// Not under o.root: a unix socket's path must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "skiff-exec-")
	if err != nil {
		return 0, fmt.Errorf("exec in container %q: %w", id, err)
	}
	defer os.RemoveAll(dir)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "console.sock"), Net: "unix"})
	if err != nil {
		return 0, fmt.Errorf("exec in container %q: console socket: %w", id, err)
	}
	defer ln.Close()
	consoles := make(chan consoleResult, 1)
	go func() { consoles <- receiveConsole(ln) }()

	h, err := o.startExecHelper(shim.ExecJob{
		Runtime: o.binary, Root: o.stateRoot(), ID: id, Args: opts.Args, Env: []string{"TERM=xterm"},
		ConsoleSocket: ln.Addr().String(), PidFile: filepath.Join(dir, "pid"),
	})
	if err != nil {
		return 0, err
	}
	var console consoleResult
	select {
	case console = <-consoles:
	case <-h.done:
		ln.Close() // no console is coming: the runtime has returned
		console = <-consoles
	case <-ctx.Done():
		h.stop()
		return 0, fmt.Errorf("exec in container %q: %w", id, ctx.Err())
	}
	if console.err != nil {
		h.stop()
		if h.err == nil && h.result.Error != "" {
			return 0, errors.New(h.result.Error) // the runtime's own word
		}
		return 0, fmt.Errorf("exec in container %q: %w", id, console.err)
	}
	attachTerminal(ctx, console.master, opts, h.done)
	if ctx.Err() != nil {
		h.stop()
		return 0, fmt.Errorf("exec in container %q: %w", id, ctx.Err())
	}
	<-h.done
	switch {
	case h.err != nil:
		return 0, fmt.Errorf("exec in container %q: %w", id, h.err)
	case h.result.Error != "":
		return 0, errors.New(h.result.Error)
	}
	return h.result.ExitCode, nil
}

// execHelper is a running exec helper; done closes once it has reported
// and ended.
type execHelper struct {
	cmd    *exec.Cmd
	done   chan struct{}
	result shim.ExecResult
	err    error
}

func (o *OCI) startExecHelper(job shim.ExecJob) (*execHelper, error) {
	arg, err := json.Marshal(job)
	if err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("exec in container %q: %w", job.ID, err)
	}
	h := &execHelper{cmd: exec.Command(o.shim), done: make(chan struct{})}
	h.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), shim.ExecEnv + "=" + string(arg)}
	h.cmd.ExtraFiles = []*os.File{w}
	var stderr bytes.Buffer
	h.cmd.Stderr = &stderr
	err = h.cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("exec in container %q: exec helper: %w", job.ID, err)
	}
	go func() {
		defer close(h.done)
		decodeErr := json.NewDecoder(r).Decode(&h.result)
		r.Close()
		waitErr := h.cmd.Wait()
		if decodeErr != nil {
			h.err = fmt.Errorf("exec helper ended without a word (%v): %w: %s", waitErr, decodeErr, bytes.TrimSpace(stderr.Bytes()))
		}
	}()
	return h, nil
}

// stop asks the helper to kill its process, kills the helper if it has
// not ended in time, and waits for it.
func (h *execHelper) stop() {
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.done:
	case <-time.After(helperStopTimeout):
		_ = h.cmd.Process.Kill()
		<-h.done
	}
}

type consoleResult struct {
	master *os.File
	err    error
}

// receiveConsole accepts the runtime's one connection to ln and takes
// the terminal master it sends (SCM_RIGHTS). Closing ln ends the wait.
func receiveConsole(ln *net.UnixListener) consoleResult {
	conn, err := ln.AcceptUnix()
	if err != nil {
		return consoleResult{err: fmt.Errorf("console socket: %w", err)}
	}
	defer conn.Close()
	name := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := conn.ReadMsgUnix(name, oob)
	if err != nil {
		return consoleResult{err: fmt.Errorf("console socket: %w", err)}
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return consoleResult{err: fmt.Errorf("console socket: no terminal sent (%v)", err)}
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return consoleResult{err: fmt.Errorf("console socket: want one descriptor, got %d (%v)", len(fds), err)}
	}
	unix.CloseOnExec(fds[0])
	// Non-blocking, so that the poller owns it and Close ends a Read.
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		return consoleResult{err: fmt.Errorf("console: %w", err)}
	}
	return consoleResult{master: os.NewFile(uintptr(fds[0]), string(name[:n]))}
}

// attachTerminal connects the exec's streams to the terminal master until
// the process has ended (exited closes) and its output is read, or ctx
// ends: stdin in (an end of stdin is the terminal's end-of-file
// character, as a user's ^D), output out, sizes applied. Then it closes
// the master: a process still holding the terminal is hung up on.
func attachTerminal(ctx context.Context, master *os.File, opts ExecOptions, exited <-chan struct{}) {
	out := opts.Stdout
	if out == nil {
		out = io.Discard
	}
	var wg sync.WaitGroup
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		_, _ = io.Copy(out, master) // until EIO: every holder of the terminal is gone
	}()
	stopResize := make(chan struct{})
	if opts.Resize != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			applyResizes(master, opts.Resize, stopResize)
		}()
	}
	if opts.Stdin != nil {
		// Not waited for: a read of Stdin ends when the caller closes it.
		go func() {
			if _, err := io.Copy(master, opts.Stdin); err == nil {
				_, _ = master.Write([]byte{4}) // VEOF
			}
		}()
	}
	select {
	case <-drained:
	case <-ctx.Done():
	case <-exited:
		select {
		case <-drained:
		case <-ctx.Done():
		case <-time.After(terminalDrainTimeout):
		}
	}
	close(stopResize)
	master.Close() // ends the output's read
	<-drained
	wg.Wait()
}

// applyResizes sets the terminal's size to each size from sizes until it
// closes or stop does.
func applyResizes(master *os.File, sizes <-chan TerminalSize, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case size, ok := <-sizes:
			if !ok {
				return
			}
			_ = setTerminalSize(master, size)
		}
	}
}

// setTerminalSize sets f's window size; through SyscallConn, since Fd
// would put f back in blocking mode.
func setTerminalSize(f *os.File, size TerminalSize) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ioctlErr error
	err = rc.Control(func(fd uintptr) {
		ioctlErr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: size.Height, Col: size.Width})
	})
	return errors.Join(err, ioctlErr)
}
