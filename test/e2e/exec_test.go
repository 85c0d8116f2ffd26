package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// execResult is what one skiff exec printed and exited with.
type execResult struct {
	stdout, stderr string
	code           int
}

// skiffExec runs skiff exec with args, stdin as its standard input.
func skiffExec(t *testing.T, kubeconfig, stdin string, args ...string) execResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, skiffBin, append([]string{"exec", "--kubeconfig", kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("skiff exec %s: %v", strings.Join(args, " "), err)
	}
	return execResult{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
}

// TestExecWithSkiff: skiff exec runs commands in a container on runc
// through the API server's exec subresource and the node's agent: both
// output streams and the command's exit code, stdin, a terminal; an
// operator's key may exec, a viewer's may not; the audit log has it.
func TestExecWithSkiff(t *testing.T) {
	s, _ := startLocalNode(t, "10.250.1.1/24")
	s.mustKubectl(t, "apply", "-f", writeFile(t, "shell.yaml", `apiVersion: skiff.dev/v1alpha1
kind: Instance
metadata:
  name: shell
  namespace: default
spec:
  nodeName: local
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: skiff.local/busybox:latest
    command: ["sh", "-c", "exec sleep 1000"]
`))
	t.Cleanup(func() { // before the server stops: remove the container
		_, _ = s.kubectl("delete", "instances", "--all", "--timeout=60s")
	})
	s.waitPhase(t, "shell", "Running")

	t.Run("both streams and the exit code", func(t *testing.T) {
		r := skiffExec(t, s.kubeconfig, "", "shell", "--", "sh", "-c", "echo out; echo err >&2; exit 7")
		if r.stdout != "out\n" || r.stderr != "err\n" || r.code != 7 {
			t.Errorf("stdout %q, stderr %q, exit %d; want out, err and 7", r.stdout, r.stderr, r.code)
		}
	})
	t.Run("stdin", func(t *testing.T) {
		r := skiffExec(t, s.kubeconfig, "hello\n", "-i", "shell", "--", "cat")
		if r.stdout != "hello\n" || r.code != 0 {
			t.Errorf("stdout %q, stderr %q, exit %d; want hello and 0", r.stdout, r.stderr, r.code)
		}
	})
	t.Run("a terminal", func(t *testing.T) {
		r := skiffExec(t, s.kubeconfig, "", "-t", "shell", "--", "busybox", "tty")
		if !strings.HasPrefix(r.stdout, "/dev/pts/") || r.code != 0 {
			t.Errorf("stdout %q, stderr %q, exit %d; want /dev/pts/N and 0", r.stdout, r.stderr, r.code)
		}
		r = skiffExec(t, s.kubeconfig, "", "shell", "--", "busybox", "tty")
		if r.stdout != "not a tty\n" || r.code != 1 {
			t.Errorf("without -t: stdout %q, exit %d; want not a tty and 1", r.stdout, r.code)
		}
	})
	t.Run("an interactive terminal that follows the local one", func(t *testing.T) {
		interactiveTerminal(t, s.kubeconfig)
	})
	t.Run("no such container", func(t *testing.T) {
		r := skiffExec(t, s.kubeconfig, "", "-c", "nope", "shell", "--", "true")
		if r.code != 1 || !strings.Contains(r.stderr, "container nope is not valid for instance shell") {
			t.Errorf("stderr %q, exit %d; want the valid containers and 1", r.stderr, r.code)
		}
	})
	t.Run("an operator may, a viewer may not", func(t *testing.T) {
		operator := newPerson(t, s, "olga", "--ca-hash", servingCertHash(t, s))
		viewer := newPerson(t, s, "vic", "--ca-hash", servingCertHash(t, s))
		s.trust(t, operator, "operator")
		s.trust(t, viewer, "viewer")
		waitFor(t, 10*time.Second, func() (bool, error) {
			return s.run(operator.kubeconfig, "get", "instances").ExitCode == 0 && s.run(viewer.kubeconfig, "get", "instances").ExitCode == 0, nil
		})
		if r := skiffExec(t, operator.kubeconfig, "", "shell", "--", "echo", "as operator"); r.stdout != "as operator\n" || r.code != 0 {
			t.Errorf("operator: stdout %q, stderr %q, exit %d", r.stdout, r.stderr, r.code)
		}
		r := skiffExec(t, viewer.kubeconfig, "", "shell", "--", "echo", "as viewer")
		if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, `cannot create resource "instances/exec"`) {
			t.Errorf("viewer: stdout %q, stderr %q, exit %d; want forbidden", r.stdout, r.stderr, r.code)
		}
	})
	t.Run("audited", func(t *testing.T) {
		waitFor(t, 30*time.Second, func() (bool, error) {
			data, err := os.ReadFile(filepath.Join(s.dataDir, "audit.log"))
			if err != nil {
				return false, nil
			}
			for _, line := range strings.Split(string(data), "\n") {
				if strings.Contains(line, `"subresource":"exec"`) && strings.Contains(line, `"verb":"create"`) &&
					strings.Contains(line, "command=cat") {
					return true, nil
				}
			}
			return false, nil
		})
	})
}

// interactiveTerminal runs skiff exec -it ... sh on a terminal of its own
// (a pty the test holds, the controlling terminal of skiff's session, as
// a user's shell's would be): the remote terminal starts at the local
// one's size and follows its resize (SIGWINCH), keys reach the shell,
// and skiff exits with the shell's code.
func interactiveTerminal(t *testing.T, kubeconfig string) {
	master, slave := openPTY(t)
	defer master.Close()
	setSize(t, master, 40, 100)
	cmd := exec.Command(skiffBin, "exec", "-it", "--kubeconfig", kubeconfig, "shell", "--", "sh")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var screen lockedBuffer
	go func() { _, _ = io.Copy(&screen, master) }()
	waitForSize := func(rows, cols int) {
		t.Helper()
		want := fmt.Sprintf("%d %d", rows, cols)
		waitFor(t, 30*time.Second, func() (bool, error) {
			if strings.Contains(screen.String(), want) {
				return true, nil
			}
			_, err := io.WriteString(master, "busybox stty size\r")
			return false, err
		})
	}
	waitForSize(40, 100)
	setSize(t, master, 50, 120)
	waitForSize(50, 120)
	if _, err := io.WriteString(master, "exit 3\r"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 3 {
			t.Errorf("skiff exec -it ... sh ended with %v, want exit code 3; the terminal shows %q", err, screen.String())
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("skiff exec -it did not end after exit; the terminal shows %q", screen.String())
	}
}

// openPTY opens a pseudo-terminal pair.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return master, slave
}

func setSize(t *testing.T, f *os.File, rows, cols uint16) {
	t.Helper()
	if err := unix.IoctlSetWinsize(int(f.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
		t.Fatal(err)
	}
}
