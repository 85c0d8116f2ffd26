// Package apiservertest starts a real skiff control plane (embedded etcd
// and the API server on a random loopback port) inside a test, for the
// integration tests of the parts that talk to it.
package apiservertest

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"skiff.dev/skiff/apiserver"
)

// Server is a running control plane, stopped at the test's cleanup.
type Server struct {
	// URL is the apiserver's https:// URL.
	URL string
	// DataDir is the server's data directory.
	DataDir string
	// Admin is a client configuration with the admin identity.
	Admin *rest.Config
	// JoinTokenFile is the path of the node join token.
	JoinTokenFile string
	// Local reads the server's storage in process, as the controllers
	// of `skiff server` do.
	Local *apiserver.Local
}

// Start boots a control plane in a temporary directory and waits until it
// is ready.
func Start(t testing.TB) *Server {
	t.Helper()
	cfg := apiserver.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	srv, err := apiserver.New(cfg)
	if err != nil {
		t.Fatalf("apiserver: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			t.Errorf("apiserver did not stop within 60s")
		}
	})
	admin, err := clientcmd.BuildConfigFromFlags("", srv.KubeconfigPath())
	if err != nil {
		t.Fatalf("admin kubeconfig: %v", err)
	}
	admin.QPS, admin.Burst = 1000, 1000
	s := &Server{URL: srv.URL(), DataDir: cfg.DataDir, Admin: admin, JoinTokenFile: filepath.Join(cfg.DataDir, apiserver.JoinTokenFile), Local: srv.Local()}
	if err := s.waitReady(done); err != nil {
		t.Fatalf("apiserver not ready: %v", err)
	}
	return s
}

func (s *Server) waitReady(done chan error) error {
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // readiness probe only
	}}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			done <- err
			return errors.Join(errors.New("server exited"), err)
		default:
		}
		if resp, err := hc.Get(s.URL + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("not ready after 60s")
}
