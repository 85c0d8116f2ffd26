package apiserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"skiff.dev/skiff/identity"
)

func TestValidateJoinRequest(t *testing.T) {
	const peer = "https://10.0.0.2:2380"
	for _, tc := range []struct {
		req JoinRequest
		ok  bool
	}{
		{JoinRequest{Name: "s2", PeerURL: peer}, true},
		{JoinRequest{Name: "server-2.example", PeerURL: peer}, true},
		{JoinRequest{Name: "s2", PeerURL: "https://[fd00::2]:2380"}, true},
		{JoinRequest{Name: "s2", PeerURL: "https://127.0.0.1:12380"}, true},

		{JoinRequest{Name: "", PeerURL: peer}, false},
		{JoinRequest{Name: "S2", PeerURL: peer}, false},
		{JoinRequest{Name: "s_2", PeerURL: peer}, false},
		{JoinRequest{Name: "-s2", PeerURL: peer}, false},
		{JoinRequest{Name: "a=b", PeerURL: peer}, false},
		{JoinRequest{Name: "a,b", PeerURL: peer}, false},
		{JoinRequest{Name: strings.Repeat("a", 254), PeerURL: peer}, false},

		{JoinRequest{Name: "s2", PeerURL: ""}, false},
		{JoinRequest{Name: "s2", PeerURL: "http://10.0.0.2:2380"}, false},
		{JoinRequest{Name: "s2", PeerURL: "https://s2.example:2380"}, false},
		{JoinRequest{Name: "s2", PeerURL: "https://10.0.0.2"}, false},
		{JoinRequest{Name: "s2", PeerURL: "https://10.0.0.2:"}, false},
		{JoinRequest{Name: "s2", PeerURL: "https://10.0.0.2:2380/"}, false},
		{JoinRequest{Name: "s2", PeerURL: "https://10.0.0.2:2380/peer"}, false},
		{JoinRequest{Name: "s2", PeerURL: "10.0.0.2:2380"}, false},
		{JoinRequest{Name: "s2", PeerURL: "unix:///tmp/peer.sock"}, false},
		// A learner nobody can reach would hold etcd's one learner seat.
		{JoinRequest{Name: "s2", PeerURL: "https://10.0.0.2:0"}, false},
		{JoinRequest{Name: "s2", PeerURL: "https://10.0.0.2:99999"}, false},
		{JoinRequest{Name: "s2", PeerURL: "https://0.0.0.0:2380"}, false},
		{JoinRequest{Name: "s2", PeerURL: "https://[::]:2380"}, false},
		{JoinRequest{Name: "s2", PeerURL: "https://224.0.0.1:2380"}, false},
		{JoinRequest{Name: "s2", PeerURL: "https://10.0.0.2:2380?x=1"}, false},
		{JoinRequest{Name: "s2", PeerURL: "https://10.0.0.2:2380#x"}, false},
		{JoinRequest{Name: "s2", PeerURL: "https://u:p@10.0.0.2:2380"}, false},
	} {
		err := validateJoinRequest(tc.req)
		if tc.ok && err != nil {
			t.Errorf("%+v: %v, want it accepted", tc.req, err)
		}
		if !tc.ok {
			field := "name"
			if tc.req.Name == "s2" {
				field = "peerURL"
			}
			if err == nil || !strings.HasPrefix(err.Error(), field+" ") {
				t.Errorf("%+v: %v, want it refused for its %s", tc.req, err, field)
			}
		}
	}
}

// joinResponse is a response carrying every shared file, each with its
// own content.
func joinResponse() *JoinResponse {
	resp := &JoinResponse{InitialCluster: "s1=https://10.0.0.1:2380,s2=https://10.0.0.2:2380", Files: map[string][]byte{},
		EncryptionConfig: []byte("kind: EncryptionConfiguration\n")}
	for _, name := range sharedFiles {
		resp.Files[name] = []byte("content of " + name)
	}
	return resp
}

func TestWriteJoinFiles(t *testing.T) {
	for _, tc := range []struct {
		name string
		// encryptionConfig is --encryption-config, relative to the test's
		// directory; "" is the data directory's default.
		encryptionConfig string
	}{
		{name: "default encryption config"},
		{name: "encryption config elsewhere", encryptionConfig: "etc/encryption.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			cfg := Config{DataDir: filepath.Join(root, "data")}
			wantEnc := filepath.Join(cfg.DataDir, EncryptionConfigFile)
			if tc.encryptionConfig != "" {
				cfg.EncryptionConfig = filepath.Join(root, tc.encryptionConfig)
				wantEnc = cfg.EncryptionConfig
			}
			resp := joinResponse()
			if err := writeJoinFiles(cfg, dataDir{path: cfg.DataDir}, resp); err != nil {
				t.Fatal(err)
			}
			for name, want := range resp.Files {
				path := filepath.Join(cfg.DataDir, filepath.FromSlash(name))
				if got := mustRead(t, path); !bytes.Equal(got, want) {
					t.Errorf("%s: %q, want %q", name, got, want)
				}
				wantMode := os.FileMode(0o600)
				if name == servingCertFile {
					wantMode = 0o644
				}
				if m := mode(t, path); m != wantMode {
					t.Errorf("%s: mode %v, want %v", name, m, wantMode)
				}
			}
			if got := mustRead(t, wantEnc); !bytes.Equal(got, resp.EncryptionConfig) {
				t.Errorf("encryption config %s: %q, want %q", wantEnc, got, resp.EncryptionConfig)
			}
			if m := mode(t, wantEnc); m != 0o600 {
				t.Errorf("encryption config: mode %v, want 0600", m)
			}
			if tc.encryptionConfig != "" {
				if _, err := os.Stat(filepath.Join(cfg.DataDir, EncryptionConfigFile)); err == nil {
					t.Error("the encryption config went into the data directory despite --encryption-config")
				}
			}
			// Nothing but the shared files and the encryption config.
			var extra []string
			walkFiles(t, root, func(rel string) {
				if !slices.Contains(sharedFiles, strings.TrimPrefix(rel, "data/")) && filepath.Join(root, rel) != wantEnc {
					extra = append(extra, rel)
				}
			})
			if len(extra) > 0 {
				t.Errorf("files written besides the shared ones: %v", extra)
			}
		})
	}
}

// walkFiles calls f with the slash path, relative to root, of every file
// under root.
func walkFiles(t *testing.T, root string, f func(rel string)) {
	t.Helper()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, path)
		f(filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestWriteJoinFilesRefusesOtherNames: a join response naming any path but
// the shared files' is refused, and nothing lands outside the data
// directory, nor in the files a server keeps its own (its member file).
func TestWriteJoinFilesRefusesOtherNames(t *testing.T) {
	for _, name := range []string{
		"../evil", "../../evil", "etcd/member.json", "etcd/../../evil", "etcd/peer.key", "etcd/peer.crt",
		"etcd/data/member/snap/db", "/tmp/evil", "./serving.crt", "serving.crt/../evil", "etcd\\..\\..\\evil",
		EncryptionConfigFile, "admin.kubeconfig", "",
	} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			data := filepath.Join(root, "data")
			cfg := Config{DataDir: data}
			resp := &JoinResponse{Files: map[string][]byte{
				name:                     []byte("evil"),
				"etcd/" + peerCACertFile: []byte("ca"),
			}, EncryptionConfig: []byte("encryption")}
			err := writeJoinFiles(cfg, dataDir{path: data}, resp)
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", name)) {
				t.Fatalf("a response naming %q: %v, want it refused by name", name, err)
			}
			walkFiles(t, root, func(rel string) {
				if !strings.HasPrefix(rel, "data/") {
					t.Errorf("%s written outside the data directory", rel)
				}
			})
			// Nothing at all: not even the good names of the response.
			for _, own := range []string{"etcd/" + memberFile, "etcd/" + peerKeyFile, "etcd/" + peerCACertFile, EncryptionConfigFile} {
				if _, err := os.Stat(filepath.Join(data, own)); err == nil {
					t.Errorf("%s written", own)
				}
			}
		})
	}
}

func TestWriteJoinFilesRefusesIncompleteResponses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*JoinResponse)
		want   string
	}{
		{name: "no peer CA", change: func(r *JoinResponse) { delete(r.Files, "etcd/"+peerCACertFile) }, want: "peer CA"},
		{name: "no files", change: func(r *JoinResponse) { r.Files = nil }, want: "peer CA"},
		{name: "no encryption config", change: func(r *JoinResponse) { r.EncryptionConfig = nil }, want: "encryption configuration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := t.TempDir()
			resp := joinResponse()
			tc.change(resp)
			err := writeJoinFiles(Config{DataDir: data}, dataDir{path: data}, resp)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("writeJoinFiles: %v, want an error about the %s", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(data, EncryptionConfigFile)); err == nil {
				t.Error("the encryption config was written from a refused response")
			}
			if _, err := os.Stat(filepath.Join(data, servingCertFile)); err == nil && tc.name != "no files" {
				t.Error("the serving certificate was written from a refused response")
			}
		})
	}
}

func TestReadServerToken(t *testing.T) {
	tok := identity.JoinToken{CAHash: bytes.Repeat([]byte{1}, 32), ID: "abcdef", Secret: bytes.Repeat([]byte{2}, 32)}
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte(tok.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(dir, "junk")
	if err := os.WriteFile(junk, []byte("not a token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{tok.String(), file} {
		got, err := readServerToken(s)
		if err != nil || got.String() != tok.String() {
			t.Errorf("readServerToken(%s): %v, %v; want the token", s, got, err)
		}
	}
	for s, want := range map[string]string{filepath.Join(dir, "missing"): "--token: ", junk: "--token " + junk} {
		if _, err := readServerToken(s); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("readServerToken(%s): %v, want an error starting %q", s, err, want)
		}
	}
}

// fakeJoinServer answers POST ClusterJoinPath with answer, counting the
// requests; token is a server token pinning its certificate.
func fakeJoinServer(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request)) (srv *httptest.Server, token string, calls *atomic.Int32) {
	t.Helper()
	calls = &atomic.Int32{}
	srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != ClusterJoinPath || r.Method != http.MethodPost {
			http.NotFound(w, r)
			return
		}
		answer(int(calls.Add(1)), w, r)
	}))
	t.Cleanup(srv.Close)
	tok, err := identity.NewJoinTokenWithID(srv.Certificate())
	if err != nil {
		t.Fatal(err)
	}
	return srv, tok.String(), calls
}

func TestPostJoin(t *testing.T) {
	want := joinResponse()
	for _, tc := range []struct {
		code      int
		body      any
		wantRetry bool
		wantErr   string // "" wants the response
	}{
		{code: http.StatusOK, body: want},
		{code: http.StatusServiceUnavailable, body: statusBody("etcd takes one learner at a time"), wantRetry: true, wantErr: "one learner at a time"},
		{code: http.StatusInternalServerError, body: statusBody("disk"), wantRetry: true, wantErr: "disk"},
		{code: http.StatusTooManyRequests, body: "slow down", wantRetry: true, wantErr: "slow down"},
		{code: http.StatusConflict, body: statusBody(`a server named "s2" is already a member`), wantErr: "already a member"},
		{code: http.StatusForbidden, body: "forbidden", wantErr: "forbidden"},
		{code: http.StatusBadRequest, body: statusBody("name"), wantErr: "400"},
		{code: http.StatusOK, body: "not json", wantErr: "join response"},
	} {
		srv, _, _ := fakeJoinServer(t, func(_ int, w http.ResponseWriter, r *http.Request) {
			if got := r.Header.Get("Authorization"); got != "Bearer secret" {
				t.Errorf("Authorization %q", got)
			}
			w.WriteHeader(tc.code)
			if s, ok := tc.body.(string); ok {
				_, _ = w.Write([]byte(s))
				return
			}
			_ = json.NewEncoder(w).Encode(tc.body)
		})
		resp, retry, err := postJoin(context.Background(), srv.Client(), srv.URL+ClusterJoinPath, "secret", []byte(`{}`))
		if retry != tc.wantRetry {
			t.Errorf("%d %v: retry %v, want %v", tc.code, tc.body, retry, tc.wantRetry)
		}
		if tc.wantErr == "" {
			if err != nil || resp.InitialCluster != want.InitialCluster || len(resp.Files) != len(want.Files) {
				t.Errorf("%d: %+v, %v; want the response", tc.code, resp, err)
			}
		} else if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%d %v: %v, want an error with %q", tc.code, tc.body, err, tc.wantErr)
		}
	}
}

func statusBody(msg string) map[string]any {
	return map[string]any{"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": msg}
}

// TestRequestJoin: the request carries the token and the join, trusts the
// pinned certificate only, and retries what may succeed later.
func TestRequestJoin(t *testing.T) {
	want := joinResponse()
	var got JoinRequest
	var token string
	srv, token, calls := fakeJoinServer(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			clusterError(w, "etcd takes one learner at a time", http.StatusServiceUnavailable)
			return
		}
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			t.Errorf("join request: %v", err)
		}
		if auth := r.Header.Get("Authorization"); auth != "Bearer "+token {
			t.Errorf("Authorization %q, want the server token", auth)
		}
		_ = json.NewEncoder(w).Encode(want)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := Config{Join: srv.URL + "/", JoinToken: token}
	resp, err := requestJoin(ctx, cfg, JoinRequest{Name: "s2", PeerURL: "https://10.0.0.2:2380"})
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 2 || resp.InitialCluster != want.InitialCluster || got != (JoinRequest{Name: "s2", PeerURL: "https://10.0.0.2:2380"}) {
		t.Fatalf("after %d requests: %+v from %+v, want the second to succeed", calls.Load(), resp, got)
	}

	// A refusal is not retried.
	refused, _, refusedCalls := fakeJoinServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		clusterError(w, `a server named "s2" is already a member`, http.StatusConflict)
	})
	cfg.Join = refused.URL
	cfg.JoinToken = tokenFor(t, refused)
	if _, err := requestJoin(ctx, cfg, JoinRequest{Name: "s2", PeerURL: "https://10.0.0.2:2380"}); err == nil ||
		!strings.HasPrefix(err.Error(), "--join "+refused.URL) || !strings.Contains(err.Error(), "already a member") || refusedCalls.Load() != 1 {
		t.Fatalf("a refused join: %v after %d requests, want the refusal after one", err, refusedCalls.Load())
	}

	// Another certificate than the token's is not retried, and nothing is
	// sent to it.
	var otherCalls atomic.Int32
	other := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		otherCalls.Add(1)
		_ = json.NewEncoder(w).Encode(want)
	}))
	other.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
	other.TLS = &tls.Config{Certificates: []tls.Certificate{otherCertificate(t)}}
	other.StartTLS()
	t.Cleanup(other.Close)
	cfg.Join, cfg.JoinToken = other.URL, token
	start := time.Now()
	if _, err := requestJoin(ctx, cfg, JoinRequest{Name: "s2", PeerURL: "https://10.0.0.2:2380"}); err == nil ||
		!strings.Contains(err.Error(), "does not match the join token") || otherCalls.Load() != 0 {
		t.Fatalf("a server with another certificate: %v after %d requests, want a pin mismatch and none", err, otherCalls.Load())
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("a pin mismatch took %s: it was retried", time.Since(start))
	}
}

// otherCertificate is a serving certificate for 127.0.0.1 other than
// httptest's.
func otherCertificate(t *testing.T) tls.Certificate {
	t.Helper()
	dir := t.TempDir()
	if err := ensurePeerCA(dir); err != nil {
		t.Fatal(err)
	}
	if err := ensurePeerCert(dir, "other", "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, peerCertFile), filepath.Join(dir, peerKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func tokenFor(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	tok, err := identity.NewJoinTokenWithID(srv.Certificate())
	if err != nil {
		t.Fatal(err)
	}
	return tok.String()
}

func clusterConfig(dataDir string) Config {
	c := DefaultConfig()
	c.DataDir, c.Name, c.Listen, c.AdvertiseAddress = dataDir, "s1", "0.0.0.0:6443", "10.0.0.1"
	return c
}

// TestPrepareMembershipInit: --cluster-init makes the peer CA and a member
// file founding a cluster of one; later starts keep the membership
// without the flag, follow a new address or port, and refuse a new name.
func TestPrepareMembershipInit(t *testing.T) {
	data := t.TempDir()
	dir := dataDir{path: data}
	cfg := clusterConfig(data)
	m, err := prepareMembership(context.Background(), cfg, dir)
	if m != nil || err != nil {
		t.Fatalf("without cluster flags: %+v, %v; want a server's own etcd", m, err)
	}
	if _, err := os.Stat(dir.file("etcd")); err == nil {
		t.Error("an etcd directory was made for a server's own etcd")
	}

	cfg.ClusterInit = true
	m, err = prepareMembership(context.Background(), cfg, dir)
	if err != nil {
		t.Fatal(err)
	}
	if !sameMembership(m, &etcdMember{Name: "s1", PeerURL: "https://10.0.0.1:2380", InitialCluster: "s1=https://10.0.0.1:2380"}) {
		t.Fatalf("--cluster-init: %+v, want s1 founding a cluster of one", *m)
	}
	want := *m
	if saved, err := loadEtcdMember(dir.file("etcd")); err != nil || *saved != want {
		t.Fatalf("member file: %+v, %v; want %+v", saved, err, want)
	}
	// Each cluster its own token: a member of another is not taken for one
	// of this one.
	other, err := prepareMembership(context.Background(), cfg, dataDir{path: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if m.ClusterToken == "" || other.ClusterToken == m.ClusterToken {
		t.Errorf("cluster tokens %q and %q, want two different ones", m.ClusterToken, other.ClusterToken)
	}
	ca := mustRead(t, dir.file("etcd/"+peerCACertFile))

	cfg.ClusterInit = false
	if m, err := prepareMembership(context.Background(), cfg, dir); err != nil || *m != want {
		t.Fatalf("restart without --cluster-init: %+v, %v; want the member", m, err)
	}
	cfg.ClusterInit = true
	if _, err := prepareMembership(context.Background(), cfg, dir); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ca, mustRead(t, dir.file("etcd/"+peerCACertFile))) {
		t.Error("a second --cluster-init start replaced the peer CA")
	}

	// A restart keeps the peer URL but for what the flags say anew; it
	// needs no address (--listen 0.0.0.0 names none).
	for _, tc := range []struct {
		advertise string
		port      int
		want      string
	}{
		{"", DefaultEtcdPeerPort, "https://10.0.0.1:2380"},
		{"10.0.0.9", DefaultEtcdPeerPort, "https://10.0.0.9:2380"},
		{"", 12380, "https://10.0.0.9:12380"},
		{"fd00::9", 12380, "https://[fd00::9]:12380"},
		{"10.0.0.1", 2381, "https://10.0.0.1:2381"},
	} {
		cfg.AdvertiseAddress, cfg.EtcdPeerPort = tc.advertise, tc.port
		moved := want
		moved.PeerURL = tc.want
		if m, err := prepareMembership(context.Background(), cfg, dir); err != nil || *m != moved {
			t.Fatalf("restart with --advertise-address %q --etcd-peer-port %d: %+v, %v; want %+v", tc.advertise, tc.port, m, err, moved)
		}
		if saved, _ := loadEtcdMember(dir.file("etcd")); saved == nil || *saved != moved {
			t.Fatalf("member file after --advertise-address %q --etcd-peer-port %d: %+v, want %+v", tc.advertise, tc.port, saved, moved)
		}
	}

	cfg.Name = "s9"
	if _, err := prepareMembership(context.Background(), cfg, dir); err == nil || !strings.HasPrefix(err.Error(), `--node-name "s9"`) {
		t.Fatalf("a new name: %v, want a refusal naming --node-name", err)
	}
}

// TestPrepareMembershipJoin: --join takes the shared files and the
// initial cluster from the server joined, and remembers the membership.
func TestPrepareMembershipJoin(t *testing.T) {
	want := joinResponse()
	var got JoinRequest
	srv, token, calls := fakeJoinServer(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		_ = json.NewDecoder(r.Body).Decode(&got)
		_ = json.NewEncoder(w).Encode(want)
	})
	data := t.TempDir()
	dir := dataDir{path: data}
	cfg := clusterConfig(data)
	cfg.Name, cfg.AdvertiseAddress, cfg.Join, cfg.JoinToken = "s2", "10.0.0.2", srv.URL, token
	m, err := prepareMembership(context.Background(), cfg, dir)
	if err != nil {
		t.Fatal(err)
	}
	wantMember := etcdMember{Name: "s2", PeerURL: "https://10.0.0.2:2380", InitialCluster: want.InitialCluster, Existing: true}
	if !sameMembership(m, &wantMember) || got != (JoinRequest{Name: "s2", PeerURL: "https://10.0.0.2:2380"}) {
		t.Fatalf("--join: %+v after asking %+v; want %+v", *m, got, wantMember)
	}
	wantMember = *m
	if saved, err := loadEtcdMember(dir.file("etcd")); err != nil || *saved != wantMember {
		t.Fatalf("member file: %+v, %v", saved, err)
	}
	if !bytes.Equal(mustRead(t, dir.file(servingCertFile)), want.Files[servingCertFile]) ||
		!bytes.Equal(mustRead(t, dir.file(EncryptionConfigFile)), want.EncryptionConfig) {
		t.Error("the shared files were not written")
	}
	// A member already: the server joined is not asked again.
	if m, err := prepareMembership(context.Background(), cfg, dir); err != nil || *m != wantMember || calls.Load() != 1 {
		t.Fatalf("restart: %+v, %v after %d join requests; want the member and one request", m, err, calls.Load())
	}
}

// sameMembership compares what these tests say of a member: its name,
// peer URL, and how its etcd first starts.
func sameMembership(a, b *etcdMember) bool {
	return a != nil && b != nil && a.Name == b.Name && a.PeerURL == b.PeerURL &&
		a.InitialCluster == b.InitialCluster && a.Existing == b.Existing
}

func TestPrepareMembershipJoinRefusesAnEtcdOfItsOwn(t *testing.T) {
	srv, token, calls := fakeJoinServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(joinResponse())
	})
	data := t.TempDir()
	if err := os.MkdirAll(filepath.Join(data, "etcd", "data", "member"), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := clusterConfig(data)
	cfg.Join, cfg.JoinToken = srv.URL, token
	_, err := prepareMembership(context.Background(), cfg, dataDir{path: data})
	if err == nil || !strings.HasPrefix(err.Error(), "--join: ") || calls.Load() != 0 {
		t.Fatalf("--join over an etcd of its own: %v after %d requests, want a refusal naming --join before any", err, calls.Load())
	}
}

func TestPrepareMembershipNeedsAnAddress(t *testing.T) {
	cfg := clusterConfig(t.TempDir())
	cfg.ClusterInit, cfg.AdvertiseAddress = true, ""
	if _, err := prepareMembership(context.Background(), cfg, dataDir{path: cfg.DataDir}); err == nil ||
		!strings.HasPrefix(err.Error(), "--advertise-address") {
		t.Fatalf("--cluster-init --listen 0.0.0.0:6443: %v, want an error naming --advertise-address", err)
	}
}
