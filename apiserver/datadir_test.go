package apiserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/rest"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"skiff.dev/skiff/identity"
)

func clientKey(obj client.Object) client.ObjectKey { return client.ObjectKeyFromObject(obj) }

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return st.Mode()
}

// TestDataDirIsPrivateAndReused checks first-start files, their modes (no
// other local user can read etcd or the keys), and that a restart reuses
// the serving certificate, identity, join token and data.
func TestDataDirIsPrivateAndReused(t *testing.T) {
	dir := t.TempDir()
	ts := startTestServer(t, dir)
	if err := ts.client.Create(context.Background(), newWorkload("kept", 1)); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{
		dir:                        0o700 | os.ModeDir,
		filepath.Join(dir, "etcd"): 0o700 | os.ModeDir,
		filepath.Join(dir, "etcd", "client.sock"): 0o600 | os.ModeSocket,
		filepath.Join(dir, adminKeyFile):          0o600,
		filepath.Join(dir, servingKeyFile):        0o600,
		filepath.Join(dir, JoinTokenFile):         0o600,
		filepath.Join(dir, AdminKubeconfigFile):   0o600,
	} {
		if got := mode(t, path); got != want {
			t.Errorf("%s: mode %v, want %v", path, got, want)
		}
	}
	token, err := ts.srv.dir.joinToken()
	if err != nil {
		t.Fatalf("join token: %v", err)
	}
	cert, err := ts.srv.dir.servingCertificate()
	if err != nil || !bytes.Equal(token.CAHash, identity.CertificateHash(cert)) {
		t.Errorf("join token does not pin the serving certificate (%v)", err)
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	certPEM, key, tok := read(servingCertFile), read(adminKeyFile), read(JoinTokenFile)
	ts.stop()

	ts = startTestServer(t, dir)
	if !bytes.Equal(certPEM, read(servingCertFile)) || !bytes.Equal(key, read(adminKeyFile)) || !bytes.Equal(tok, read(JoinTokenFile)) {
		t.Fatal("restart replaced the serving certificate, admin key or join token")
	}
	w := newWorkload("kept", 1)
	if err := ts.client.Get(context.Background(), clientKey(w), w); err != nil {
		t.Fatalf("object after restart: %v", err)
	}
}

func TestOpenAPIPublishesSkiffKinds(t *testing.T) {
	ts := startTestServer(t, t.TempDir())
	hc, err := rest.HTTPClientFor(ts.cfg)
	if err != nil {
		t.Fatal(err)
	}
	for path, wants := range map[string][]string{
		"/openapi/v2":                         {`"dev.skiff.v1alpha1.Workload"`, `"x-kubernetes-group-version-kind"`, `"dev.skiff.v1alpha1.Instance"`, `"io.k8s.api.core.v1.Namespace"`},
		"/openapi/v3/apis/skiff.dev/v1alpha1": {`"dev.skiff.v1alpha1.Node"`, `"group":"skiff.dev"`, `"kind":"Workload"`},
	} {
		code, body := get(t, hc, ts.srv.URL()+path)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d", path, code)
		}
		compact := strings.ReplaceAll(strings.ReplaceAll(body, " ", ""), "\n", "")
		for _, want := range wants {
			if !strings.Contains(compact, want) {
				t.Errorf("%s lacks %s", path, want)
			}
		}
	}
}

// TestDataDirInUse: a second server on a data directory in use stops at
// once, naming the process that holds it, and touches nothing (the first
// server's kubeconfig still points at it).
func TestDataDirInUse(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.DataDir, cfg.Listen = dir, "127.0.0.1:0"
	first, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(first.KubeconfigPath())
	if err != nil {
		t.Fatal(err)
	}
	// flock locks belong to an open file, so a second open in this
	// process is refused as another process would be.
	second, err := New(cfg)
	if !errors.Is(err, ErrDataDirInUse) || !strings.Contains(err.Error(), fmt.Sprintf("process %d", os.Getpid())) {
		t.Fatalf("second server on %s: %v, want %v naming process %d", dir, err, ErrDataDirInUse, os.Getpid())
	}
	if second != nil {
		t.Fatal("a second server was made")
	}
	if after, _ := os.ReadFile(first.KubeconfigPath()); !bytes.Equal(before, after) {
		t.Error("the second server rewrote admin.kubeconfig")
	}
	// Run releases the lock: a later server starts.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = first.Run(ctx)
	third, err := New(cfg)
	if err != nil {
		t.Fatalf("after the first server stopped: %v", err)
	}
	third.unlock()
	third.listener.Close()
}
