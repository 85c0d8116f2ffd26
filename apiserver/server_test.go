package apiserver

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// testServer is an in-process control plane: embedded etcd and the API
// server on a random loopback port.
type testServer struct {
	srv    *Server
	cfg    *rest.Config
	client client.Client
	scheme *runtime.Scheme
	cancel context.CancelFunc
	done   chan error
	// stopped makes stop (a test's own and its cleanup's) wait once.
	stopped sync.Once
}

func startTestServer(t testing.TB, dataDir string, configure ...func(*Config)) *testServer {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DataDir = dataDir
	cfg.Listen = "127.0.0.1:0"
	for _, c := range configure {
		c(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{srv: srv, cancel: cancel, done: make(chan error, 1)}
	go func() { ts.done <- srv.Run(ctx) }()
	t.Cleanup(ts.stop)

	ts.cfg, err = clientcmd.BuildConfigFromFlags("", srv.KubeconfigPath())
	if err != nil {
		t.Fatalf("kubeconfig: %v", err)
	}
	ts.cfg.QPS, ts.cfg.Burst = 1000, 1000
	ts.waitReady(t)
	ts.scheme = runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{skiffv1alpha1.AddToScheme, corev1.AddToScheme} {
		if err := add(ts.scheme); err != nil {
			t.Fatal(err)
		}
	}
	ts.client, err = client.New(ts.cfg, client.Options{Scheme: ts.scheme})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	return ts
}

// stop shuts the server down and waits for Run to return.
func (ts *testServer) stop() {
	ts.stopped.Do(func() {
		ts.cancel()
		select {
		case <-ts.done:
		case <-time.After(60 * time.Second):
		}
	})
}

func (ts *testServer) waitReady(t testing.TB) {
	t.Helper()
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // probe only
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := poll(ctx, func() error {
		select {
		case err := <-ts.done:
			ts.done <- err
			return errors.Join(errors.New("server exited"), err)
		default:
		}
		resp, err := hc.Get(ts.srv.URL() + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errors.New(resp.Status)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("server not ready: %v", err)
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
