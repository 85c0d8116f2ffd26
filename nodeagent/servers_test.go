package nodeagent

import (
	"context"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/apiserver/apiservertest"
)

// deadServer is an https:// URL nothing listens at.
func deadServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	return "https://" + ln.Addr().String()
}

// TestJoinServers: an agent reaches the first server of --server that
// answers, or, with none, one it learned before (kept in its data dir).
func TestJoinServers(t *testing.T) {
	s := apiservertest.Start(t)
	for _, tc := range []struct {
		name    string
		flag    func(dead string) string
		learned []string
	}{
		{name: "the first is down", flag: func(dead string) string { return dead + "," + s.URL }},
		{name: "every one of --server is down", flag: func(dead string) string { return dead }, learned: []string{s.URL}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := t.TempDir()
			cfg := testConfig(s, dataDir, "n-"+strings.ReplaceAll(tc.name, " ", "-"))
			cfg.Server = tc.flag(deadServer(t))
			if tc.learned != nil {
				if err := saveServers(dataDir, tc.learned); err != nil {
					t.Fatal(err)
				}
			}
			a, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			j, err := join(context.Background(), cfg, a.scheme, joinOptions{})
			if err != nil {
				t.Fatalf("join: %v", err)
			}
			if j.servers.Current() != s.URL {
				t.Errorf("current server %s, want the one up, %s", j.servers.Current(), s.URL)
			}
		})
	}
}

func TestServersFile(t *testing.T) {
	dir := t.TempDir()
	if got, err := loadServers(dir); err != nil || got != nil {
		t.Fatalf("no file: %q, %v; want none", got, err)
	}
	want := []string{"https://10.0.0.1:6443", "https://10.0.0.2:6443"}
	if err := saveServers(dir, want); err != nil {
		t.Fatal(err)
	}
	if got, err := loadServers(dir); err != nil || !slices.Equal(got, want) {
		t.Fatalf("loaded %q, %v; want %q", got, err, want)
	}
	// A damaged file is ignored: --server still counts.
	if err := os.WriteFile(filepath.Join(dir, serversFile), []byte("https://10.0.0.1:6443\nhttp://junk\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadServers(dir); err == nil {
		t.Error("a damaged file: no error")
	}
	servers, err := knownServers(Config{Server: "https://10.0.0.9:6443", DataDir: dir})
	if err != nil || !slices.Equal(servers.List(), []string{"https://10.0.0.9:6443"}) {
		t.Errorf("known servers beside a damaged file: %v, %v; want --server's", servers, err)
	}
}

func TestConfigServer(t *testing.T) {
	for _, tc := range []struct {
		server, wantErr string
	}{
		{server: "https://10.0.0.1:6443"},
		{server: "https://10.0.0.1:6443, https://10.0.0.2:6443"},
		{server: "", wantErr: "--server: must name"},
		{server: "https://10.0.0.1:6443,http://10.0.0.2:6443", wantErr: `--server "http://10.0.0.2:6443"`},
		{server: "10.0.0.1:6443", wantErr: `--server "10.0.0.1:6443"`},
	} {
		cfg := DefaultConfig()
		cfg.Server, cfg.JoinToken, cfg.NodeName = tc.server, "token", "n1"
		err := cfg.Validate()
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("--server %q: %v, want error %q", tc.server, err, tc.wantErr)
		}
	}
}

// silentProxy forwards TLS connections to target, except its n-th: that
// one it forwards until the client has finished its handshake and sends
// its first request, which it holds, unanswered, until the test ends. The
// client sees a server that took its request and never answered.
// silenced counts the requests held so.
func silentProxy(t *testing.T, target string, n int) (addr string, silenced *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	silenced = new(atomic.Int32)
	var mu sync.Mutex
	var conns []net.Conn
	hold := func(c net.Conn) {
		mu.Lock()
		defer mu.Unlock()
		conns = append(conns, c)
	}
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for i := 1; ; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			hold(c)
			hold(up)
			go func() { _, _ = io.Copy(c, up); c.Close() }()
			if i != n {
				go func() { _, _ = io.Copy(up, c); up.Close() }()
				continue
			}
			go func() {
				// TLS records: type, version, length, then the payload.
				// The client's Finished is its first application-data
				// record (TLS 1.3), its request the second.
				appData := 0
				for {
					var hdr [5]byte
					if _, err := io.ReadFull(c, hdr[:]); err != nil {
						return
					}
					if hdr[0] == 23 {
						if appData++; appData == 2 {
							silenced.Add(1)
							_, _ = io.Copy(io.Discard, c)
							return
						}
					}
					payload := make([]byte, int(hdr[3])<<8|int(hdr[4]))
					if _, err := io.ReadFull(c, payload); err != nil {
						return
					}
					if _, err := up.Write(append(hdr[:], payload...)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), silenced
}

// TestJoinOutlastsASilentServer: a server that takes the agent's
// connection and never answers costs the join one attempt, not the agent.
func TestJoinOutlastsASilentServer(t *testing.T) {
	s := apiservertest.Start(t)
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	// The first connection fetches the server's certificate; the second
	// is the node client's.
	proxy, silenced := silentProxy(t, u.Host, 2)
	cfg := testConfig(s, t.TempDir(), "n1")
	cfg.Server = "https://" + proxy
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	j, err := joinPatiently(ctx, cfg, a.scheme, joinOptions{}, time.Second)
	if err != nil {
		t.Fatalf("join through a server that stalls once: %v", err)
	}
	// A generous bound: an attempt is a second. Without one, the join
	// waited for the stalled connection to be found dead (HTTP/2's
	// health check, over 30 s); with a live server stuck on the request
	// it would wait forever.
	if took := time.Since(start); took > 20*time.Second {
		t.Fatalf("the join took %s through a server that stalled once, want a retry after the 1 s attempt", took)
	}
	if silenced.Load() != 1 {
		t.Fatalf("the proxy stalled %d connections, want 1", silenced.Load())
	}
	var n skiffv1alpha1.Node
	if err := j.client.Get(ctx, client.ObjectKey{Name: "n1"}, &n); err != nil {
		t.Fatalf("the joined node reads itself: %v", err)
	}
	if n.Spec.PublicKey != j.id.PublicKeyString() {
		t.Fatalf("node n1 has key %q, want the agent's %q", n.Spec.PublicKey, j.id.PublicKeyString())
	}
}
