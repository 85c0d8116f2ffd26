package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
)

const (
	// tsClientTimeout bounds one run of the TypeScript client.
	tsClientTimeout = 2 * time.Minute
	// tsNpmCITimeout bounds installing its dependencies from the lockfile.
	tsNpmCITimeout = 5 * time.Minute
)

// TestMCPTypeScriptClient drives `skiff mcp --http` with a second,
// independent MCP client: the official TypeScript SDK on Node
// (test/e2e/mcpclient), presenting the admin's client certificate.
func TestMCPTypeScriptClient(t *testing.T) {
	requireE2E(t)
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		t.Skipf("the TypeScript MCP client needs node: %v", err)
	}
	npmBin, err := exec.LookPath("npm")
	if err != nil {
		t.Skipf("the TypeScript MCP client needs npm: %v", err)
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	clientDir := filepath.Join(root, "test", "e2e", "mcpclient")
	tsEnsureNodeModules(t, npmBin, clientDir)

	s := startServer(t, t.TempDir(), "127.0.0.1:0")
	mcpURL, caFile := startMCPHTTP(t, filepath.Join(s.dataDir, "mcp.kubeconfig"), t.TempDir())
	certFile, keyFile := tsWriteClientCert(t, s.kubeconfig)

	ctx, cancel := context.WithTimeout(context.Background(), tsClientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeBin, filepath.Join(clientDir, "client.mjs"), mcpURL, caFile, certFile, keyFile)
	cmd.Dir = clientDir
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	t.Logf("node client.mjs stdout:\n%s", stdout.String())
	if stderr.Len() > 0 {
		t.Logf("node client.mjs stderr:\n%s", stderr.String())
	}
	if ctx.Err() != nil {
		t.Fatalf("node client.mjs did not finish within %v: %v", tsClientTimeout, err)
	}
	if err != nil {
		t.Fatalf("node client.mjs: %v", err)
	}

	var summary struct {
		ProtocolVersion string `json:"protocolVersion"`
		Tools           int    `json:"tools"`
		OK              bool   `json:"ok"`
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &summary); err != nil {
		t.Fatalf("node client.mjs summary %q: %v", lines[len(lines)-1], err)
	}
	if !summary.OK {
		t.Errorf("node client.mjs summary: ok = false")
	}
	if summary.ProtocolVersion == "" {
		t.Errorf("node client.mjs summary: no protocolVersion")
	}
	if summary.Tools == 0 {
		t.Errorf("node client.mjs summary: no tools")
	}
}

// tsEnsureNodeModules installs the client's dependencies from its lockfile
// (npm ci) unless node_modules is already there.
func tsEnsureNodeModules(t *testing.T, npmBin, dir string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "node_modules")); err == nil {
		return
	} else if !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), tsNpmCITimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, npmBin, "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
	}
	t.Logf("npm ci in %s:\n%s", dir, out)
}

// startMCPHTTP starts `skiff mcp --http 127.0.0.1:0` (and extra flags),
// killed at cleanup, and returns its endpoint URL and serving certificate
// file from the line it prints on stderr.
func startMCPHTTP(t *testing.T, kubeconfig, dataDir string, extra ...string) (mcpURL, certFile string) {
	t.Helper()
	args := append([]string{"mcp", "--http", "127.0.0.1:0", "--kubeconfig", kubeconfig, "--data-dir", dataDir}, extra...)
	cmd := exec.Command(skiffBin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatalf("stderr pipe: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s mcp: %v", skiffBin, err)
	}
	t.Logf("started skiff mcp pid %d", cmd.Process.Pid)

	type banner struct{ url, cert string }
	bannerCh := make(chan banner, 1)
	var logBuf bytes.Buffer // stderr, read only after copied is closed
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sent := false
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			logBuf.WriteString(line + "\n")
			if sent {
				continue
			}
			// skiff mcp serving URL (serving certificate PATH)
			rest, ok := strings.CutPrefix(line, "skiff mcp serving ")
			if !ok {
				continue
			}
			u, cert, ok := strings.Cut(rest, " (serving certificate ")
			if !ok || !strings.HasSuffix(cert, ")") {
				continue
			}
			bannerCh <- banner{url: u, cert: strings.TrimSuffix(cert, ")")}
			sent = true
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	exited := make(chan struct{})
	var waitErr error
	go func() {
		<-copied // Wait must not run before the pipe is drained.
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("skiff mcp stderr:\n%s", logBuf.String())
		}
	})

	select {
	case b := <-bannerCh:
		return b.url, b.cert
	case <-exited:
		t.Fatalf("skiff mcp exited before printing its URL: %v\n%s", waitErr, logBuf.String())
	case <-time.After(startupTimeout):
		t.Fatalf("skiff mcp printed no URL within %v", startupTimeout)
	}
	return "", ""
}

// tsWriteClientCert writes the client certificate and key of kubeconfig's
// first user to PEM files and returns their paths.
func tsWriteClientCert(t *testing.T, kubeconfig string) (certFile, keyFile string) {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatalf("load %s: %v", kubeconfig, err)
	}
	ctx, ok := cfg.Contexts[cfg.CurrentContext]
	if !ok {
		t.Fatalf("%s: no current context %q", kubeconfig, cfg.CurrentContext)
	}
	user, ok := cfg.AuthInfos[ctx.AuthInfo]
	if !ok {
		t.Fatalf("%s: no user %q", kubeconfig, ctx.AuthInfo)
	}
	if len(user.ClientCertificateData) == 0 || len(user.ClientKeyData) == 0 {
		t.Fatalf("%s: user %q has no client-certificate-data or client-key-data", kubeconfig, ctx.AuthInfo)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	if err := os.WriteFile(certFile, user.ClientCertificateData, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, user.ClientKeyData, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
