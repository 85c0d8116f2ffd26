// Package e2e drives the real skiff binary and the real kubectl end to end.
//
// The skiff binary comes from $SKIFF_BIN, or is built once by TestMain.
// Every test is skipped when /usr/bin/kubectl is missing.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	kubectlPath = "/usr/bin/kubectl"

	startupTimeout  = 60 * time.Second
	shutdownTimeout = 30 * time.Second
	kubectlTimeout  = 90 * time.Second
	pollInterval    = 100 * time.Millisecond
)

var (
	// skiffBin is the binary under test.
	skiffBin string
	// skipReason, when set, skips every test.
	skipReason string
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if _, err := os.Stat(kubectlPath); err != nil {
		skipReason = fmt.Sprintf("e2e tests need %s: %v", kubectlPath, err)
		return m.Run()
	}
	skiffBin = os.Getenv("SKIFF_BIN")
	if skiffBin == "" {
		tmp, err := os.MkdirTemp("", "skiff-e2e-bin-")
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e: temp dir: %v\n", err)
			return 1
		}
		defer os.RemoveAll(tmp)
		root, err := repoRoot()
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
			return 1
		}
		skiffBin = filepath.Join(tmp, "skiff")
		// make build sets the version ldflags kubectl version needs.
		build := exec.Command("make", "build", "BIN="+tmp)
		build.Dir = root
		build.Stdout = os.Stderr
		build.Stderr = os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: make build: %v\n", err)
			return 1
		}
	} else if abs, err := filepath.Abs(skiffBin); err == nil {
		skiffBin = abs
	}
	if _, err := os.Stat(skiffBin); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: skiff binary: %v\n", err)
		return 1
	}
	return m.Run()
}

// repoRoot walks up from the working directory to the directory holding go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// requireE2E skips t when the environment cannot run the e2e tests.
func requireE2E(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

// server is one running `skiff server` process.
type server struct {
	t          *testing.T
	dataDir    string
	url        string // https://127.0.0.1:PORT
	kubeconfig string // DIR/admin.kubeconfig
	cacheDir   string // kubectl discovery cache, private to this server
	logPath    string

	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has been reaped
	err    error         // cmd.Wait's result, valid after exited is closed

	mu       sync.Mutex
	signaled bool
}

// startServer starts `skiff server --data-dir dataDir --listen listen`, waits
// until it prints its URL and answers /readyz, and stops it at cleanup.
// startServer runs `skiff server` without its local agent; extra flags
// (e.g. to run the agent) follow.
func startServer(t *testing.T, dataDir, listen string, extra ...string) *server {
	t.Helper()
	return startServerIn(t, "", dataDir, listen, extra...)
}

// startServerIn is startServer inside the network namespace netns (a
// path; empty: this process's own).
func startServerIn(t *testing.T, netns, dataDir, listen string, extra ...string) *server {
	t.Helper()
	requireE2E(t)
	logDir := t.TempDir()
	s := &server{
		t:        t,
		dataDir:  dataDir,
		cacheDir: filepath.Join(logDir, "kube-cache"),
		exited:   make(chan struct{}),
	}
	logFile, err := os.CreateTemp(logDir, "skiff-*.log")
	if err != nil {
		t.Fatalf("server log: %v", err)
	}
	s.logPath = logFile.Name()

	args := []string{"server", "--data-dir", dataDir, "--listen", listen}
	if len(extra) == 0 {
		args = append(args, "--disable-agent")
	}
	// Tests run side by side: no fixed gossip ports, unless a test says.
	if !slices.ContainsFunc(extra, func(a string) bool { return strings.HasPrefix(a, "--gossip-bind") }) {
		args = append(args, "--gossip-bind", "127.0.0.1:0")
	}
	if !slices.ContainsFunc(extra, func(a string) bool { return strings.HasPrefix(a, "--agent-gossip-bind") }) {
		args = append(args, "--agent-gossip-bind", "127.0.0.1:0")
	}
	cmd := exec.Command(skiffBin, append(args, extra...)...)
	if netns != "" {
		// nsenter execs skiff: the pid stays the server's.
		cmd = exec.Command("nsenter", append([]string{"--net=" + netns, skiffBin}, append(args, extra...)...)...)
	}
	cmd.Stderr = logFile
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("stdout pipe: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", skiffBin, err)
	}
	s.cmd = cmd
	t.Logf("started skiff server pid %d, data dir %s, log %s", cmd.Process.Pid, dataDir, s.logPath)

	type banner struct{ url, kubeconfig string }
	bannerCh := make(chan banner, 1)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		var b banner
		sent := false
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintf(logFile, "[stdout] %s\n", line)
			switch {
			case strings.HasPrefix(line, "skiff server listening on "):
				b.url = strings.TrimSpace(strings.TrimPrefix(line, "skiff server listening on "))
			case strings.HasPrefix(line, "admin kubeconfig: "):
				b.kubeconfig = strings.TrimSpace(strings.TrimPrefix(line, "admin kubeconfig: "))
			}
			if !sent && b.url != "" && b.kubeconfig != "" {
				bannerCh <- b
				sent = true
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		<-copied // Wait must not run before the pipe is drained.
		s.err = cmd.Wait()
		logFile.Close()
		close(s.exited)
	}()

	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			s.dumpLog(80)
		}
	})

	select {
	case b := <-bannerCh:
		s.url, s.kubeconfig = b.url, b.kubeconfig
	case <-s.exited:
		s.dumpLog(80)
		t.Fatalf("skiff server exited before printing its URL: %v", s.err)
	case <-time.After(startupTimeout):
		s.dumpLog(80)
		t.Fatalf("skiff server printed no URL within %v", startupTimeout)
	}
	if want := filepath.Join(dataDir, "admin.kubeconfig"); filepath.Clean(s.kubeconfig) != filepath.Clean(want) {
		t.Errorf("admin kubeconfig path = %q, want %q", s.kubeconfig, want)
	}

	client := s.anonymousClient(t)
	deadline := time.Now().Add(startupTimeout)
	var lastErr error
	for {
		resp, err := client.Get(s.url + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.TrimSpace(string(body)) == "ok" {
				break
			}
			err = fmt.Errorf("/readyz: %d %q", resp.StatusCode, body)
		}
		lastErr = err
		select {
		case <-s.exited:
			s.dumpLog(80)
			t.Fatalf("skiff server exited while waiting for /readyz: %v (last probe: %v)", s.err, lastErr)
		default:
		}
		if time.Now().After(deadline) {
			s.dumpLog(80)
			t.Fatalf("skiff server not ready within %v: %v", startupTimeout, lastErr)
		}
		time.Sleep(pollInterval)
	}
	return s
}

// anonymousClient is an http.Client without credentials that trusts the
// server's self-signed serving certificate.
func (s *server) anonymousClient(t *testing.T) *http.Client {
	t.Helper()
	pemBytes, err := os.ReadFile(filepath.Join(s.dataDir, "serving.crt"))
	if err != nil {
		t.Fatalf("read serving.crt: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatalf("serving.crt holds no PEM certificate")
	}
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			// Every serving certificate names localhost; the servers of a
			// cluster share the first one's, which names only its address.
			TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: "localhost"},
			DisableKeepAlives: true,
		},
	}
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// signal sends sig unless the process has been reaped. os.Process.Signal
// (pidfd based on Linux) never hits a recycled pid.
func (s *server) signal(sig syscall.Signal) {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(sig)
}

// exitedEarly describes the process's exit when it ended without being
// stopped by the test, else "".
func (s *server) exitedEarly() string {
	s.mu.Lock()
	signaled := s.signaled
	s.mu.Unlock()
	if signaled {
		return ""
	}
	select {
	case <-s.exited:
		return fmt.Sprintf("skiff server pid %d exited on its own: %v (log %s)", s.pid(), s.err, s.logPath)
	default:
		return ""
	}
}

// stop sends SIGTERM and waits for the process to exit; after
// shutdownTimeout it sends SIGKILL. It returns the process's exit error
// (nil for a clean exit). It is safe to call more than once.
func (s *server) stop() error {
	s.mu.Lock()
	first := !s.signaled
	s.signaled = true
	s.mu.Unlock()
	if first {
		select {
		case <-s.exited:
			s.t.Errorf("skiff server pid %d exited before it was stopped: %v", s.pid(), s.err)
			s.dumpLog(200)
			return s.err
		default:
		}
		s.signal(syscall.SIGTERM)
	}
	select {
	case <-s.exited:
		return s.err
	case <-time.After(shutdownTimeout):
	}
	s.t.Errorf("skiff server pid %d did not exit within %v of SIGTERM; sending SIGKILL", s.pid(), shutdownTimeout)
	s.signal(syscall.SIGKILL)
	<-s.exited
	return s.err
}

// kill9 sends SIGKILL and waits for the process to be reaped.
func (s *server) kill9() {
	s.mu.Lock()
	s.signaled = true
	s.mu.Unlock()
	s.signal(syscall.SIGKILL)
	select {
	case <-s.exited:
	case <-time.After(shutdownTimeout):
		s.t.Fatalf("skiff server pid %d survived SIGKILL for %v", s.pid(), shutdownTimeout)
	}
}

func (s *server) dumpLog(lines int) {
	data, err := os.ReadFile(s.logPath)
	if err != nil {
		s.t.Logf("server log %s: %v", s.logPath, err)
		return
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	s.t.Logf("last %d lines of server log %s:\n%s", len(all), s.logPath, strings.Join(all, "\n"))
}

// kubectlError is a failed kubectl run.
type kubectlError struct {
	Args     []string
	ExitCode int
	Stdout   string
	Stderr   string
	Err      error
}

func (e *kubectlError) Error() string {
	return fmt.Sprintf("kubectl %s: %v (exit %d)\nstdout: %s\nstderr: %s",
		strings.Join(e.Args, " "), e.Err, e.ExitCode, e.Stdout, e.Stderr)
}

// kubectlResult is the outcome of one kubectl run.
type kubectlResult struct {
	Stdout, Stderr string
	ExitCode       int // -1 when kubectl did not run or was killed
	Err            error
}

// Combined is stdout and stderr together, for message checks.
func (r kubectlResult) Combined() string { return r.Stdout + r.Stderr }

// run runs kubectl with the given kubeconfig and returns what it did.
func (s *server) run(kubeconfig string, args ...string) kubectlResult {
	ctx, cancel := context.WithTimeout(context.Background(), kubectlTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectlPath, args...)
	cmd.Env = s.kubectlEnv(kubeconfig)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := kubectlResult{Stdout: stdout.String(), Stderr: stderr.String(), Err: err}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		r.ExitCode = 0
	case errors.As(err, &exitErr):
		r.ExitCode = exitErr.ExitCode()
	default:
		r.ExitCode = -1
	}
	return r
}

func (s *server) kubectlEnv(kubeconfig string) []string {
	env := []string{"KUBECONFIG=" + kubeconfig, "KUBECACHEDIR=" + s.cacheDir}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "KUBECONFIG=") || strings.HasPrefix(kv, "KUBECACHEDIR=") ||
			strings.HasPrefix(kv, "KUBECTL_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// runKubectl runs kubectl as the admin.
func (s *server) runKubectl(args ...string) kubectlResult {
	return s.run(s.kubeconfig, args...)
}

// kubectl runs kubectl as the admin; a non-zero exit is a *kubectlError.
func (s *server) kubectl(args ...string) (string, error) {
	r := s.runKubectl(args...)
	if r.Err != nil {
		if early := s.exitedEarly(); early != "" {
			r.Stderr += "\n[e2e] " + early
		}
		return r.Stdout, &kubectlError{Args: args, ExitCode: r.ExitCode, Stdout: r.Stdout, Stderr: r.Stderr, Err: r.Err}
	}
	return r.Stdout, nil
}

// mustKubectl runs kubectl as the admin and fails t unless it exits 0.
func (s *server) mustKubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := s.kubectl(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// waitFor polls cond until it returns true, failing t when cond returns an
// error or timeout passes first.
func waitFor(t *testing.T, timeout time.Duration, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("waitFor: %v", err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waitFor: condition not met within %v", timeout)
		}
		time.Sleep(pollInterval)
	}
}

// writeFile writes content to name in a fresh temp dir and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
