package e2e

import (
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// notifySocket listens where a Type=notify service reports to systemd.
func notifySocket(t *testing.T) (string, *net.UnixConn) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return path, conn
}

func expectReady(t *testing.T, who string, conn *net.UnixConn) {
	t.Helper()
	buf := make([]byte, 4096)
	if err := conn.SetReadDeadline(time.Now().Add(90 * time.Second)); err != nil {
		t.Fatal(err)
	}
	n, err := conn.Read(buf)
	if err != nil || !strings.Contains(string(buf[:n]), "READY=1") {
		t.Fatalf("%s did not notify readiness: %q, %v", who, buf[:n], err)
	}
}

// bearerStatus is the status of a GET of url with the token in tokenFile.
func bearerStatus(t *testing.T, url, tokenFile string) int {
	t.Helper()
	tok, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestSdNotify: skiff server and skiff agent tell systemd they are ready
// (the units in config/systemd are Type=notify).
func TestSdNotify(t *testing.T) {
	requireE2E(t)
	dir := t.TempDir()
	serverSock, serverConn := notifySocket(t)
	srv := exec.Command(skiffBin, "server", "--data-dir", dir, "--listen", "127.0.0.1:0", "--disable-agent", "--gossip-bind", "127.0.0.1:0")
	srv.Env = append(os.Environ(), "NOTIFY_SOCKET="+serverSock)
	// A file, not a buffer: the process writes it while the test reads.
	srvOut, err := os.Create(filepath.Join(t.TempDir(), "server.out"))
	if err != nil {
		t.Fatal(err)
	}
	srv.Stdout, srv.Stderr = srvOut, srvOut
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Signal(syscall.SIGTERM); _ = srv.Wait() })
	expectReady(t, "skiff server", serverConn)

	out, _ := os.ReadFile(srvOut.Name())
	var url string
	for _, line := range strings.Split(string(out), "\n") {
		if u, ok := strings.CutPrefix(line, "skiff server listening on "); ok {
			url = strings.TrimSpace(u)
		}
	}
	if url == "" {
		t.Fatalf("no URL in the server's output:\n%s", out)
	}
	// Ready means ready to join: the join token works from the first
	// request after READY=1 (the library's own READY came before the
	// token's record was written, and an agent started on it was
	// refused about one time in twenty).
	if code := bearerStatus(t, url+"/api", filepath.Join(dir, "join-token")); code == http.StatusUnauthorized {
		out, _ := os.ReadFile(srvOut.Name())
		t.Fatalf("the join token was refused (%d) right after the server said it was ready; the server's output:\n%s", code, out)
	}
	agentSock, agentConn := notifySocket(t)
	agent := exec.Command(skiffBin, "agent", "--server", url, "--join-token", filepath.Join(dir, "join-token"),
		"--data-dir", t.TempDir(), "--node-name", "notify", "--runtime", "sim", "--listen", "127.0.0.1:0", "--gossip-bind", "127.0.0.1:0")
	agent.Env = append(os.Environ(), "NOTIFY_SOCKET="+agentSock)
	agentOut, err := os.Create(filepath.Join(t.TempDir(), "agent.out"))
	if err != nil {
		t.Fatal(err)
	}
	agent.Stdout, agent.Stderr = agentOut, agentOut
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = agent.Process.Signal(syscall.SIGTERM); _ = agent.Wait() })
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := os.ReadFile(agentOut.Name())
			t.Logf("the agent's output:\n%s", out)
			out, _ = os.ReadFile(srvOut.Name())
			t.Logf("the server's output:\n%s", out)
		}
	})
	expectReady(t, "skiff agent", agentConn)
}
