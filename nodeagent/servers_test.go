package nodeagent

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

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
