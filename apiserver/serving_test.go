package apiserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/identity"
)

// anonymousClient trusts the serving certificate but presents no identity.
func anonymousClient(t *testing.T, ts *testServer) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(ts.srv.dir.file(servingCertFile))
	if err != nil || !pool.AppendCertsFromPEM(ca) {
		t.Fatalf("serving certificate: %v", err)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestAnonymousOnlyReachesProbes(t *testing.T) {
	ts := startTestServer(t, t.TempDir())
	anon := anonymousClient(t, ts)
	for _, p := range []string{"/livez", "/readyz", "/healthz", "/live", "/ready", "/health"} {
		if code, body := get(t, anon, ts.srv.URL()+p); code != http.StatusOK {
			t.Errorf("anonymous GET %s: %d %s, want 200", p, code, body)
		}
	}
	for _, p := range []string{"/api/v1/namespaces", "/apis/skiff.dev/v1alpha1/workloads", "/metrics", "/openapi/v2", "/version"} {
		if code, _ := get(t, anon, ts.srv.URL()+p); code != http.StatusUnauthorized {
			t.Errorf("anonymous GET %s: %d, want 401", p, code)
		}
	}
	// Probes are public whatever they carry: a junk Authorization header
	// and a certificate of a key nobody trusts answered 401.
	stranger, err := identity.New()
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _ := stranger.ClientCertificate("stranger", time.Now())
	keyPEM, _ := stranger.KeyPEM()
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	withCert := anonymousClient(t, ts)
	withCert.Transport.(*http.Transport).TLSClientConfig.Certificates = []tls.Certificate{cert}
	for _, p := range []string{"/livez", "/readyz", "/healthz?verbose", "/readyz/etcd", "/ready", "/health"} {
		req, _ := http.NewRequest(http.MethodGet, ts.srv.URL()+p, nil)
		req.Header.Set("Authorization", "Bearer junk")
		for name, c := range map[string]*http.Client{"junk Authorization": anon, "an untrusted certificate": withCert} {
			resp, err := c.Do(req)
			if err != nil {
				t.Fatalf("GET %s with %s: %v", p, name, err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET %s with %s: %d, want 200", p, name, resp.StatusCode)
			}
		}
	}
}

// TestHealthIsComputedOncePerSecond: a flood of /health probes costs one
// computation (an etcd read and every component's check) per second.
func TestHealthIsComputedOncePerSecond(t *testing.T) {
	now := time.Unix(1700000000, 0)
	var computed atomic.Int32
	c := &healthCache{now: func() time.Time { return now }, compute: func(context.Context) Health {
		computed.Add(1)
		time.Sleep(10 * time.Millisecond)
		return Health{Status: "ok"}
	}}
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			if h := c.get(); h.Status != "ok" {
				t.Errorf("health %+v", h)
			}
		})
	}
	wg.Wait()
	if n := computed.Load(); n != 1 {
		t.Errorf("100 probes at once computed health %d times, want 1", n)
	}
	now = now.Add(healthTTL)
	c.get()
	if n := computed.Load(); n != 2 {
		t.Errorf("a probe a second later computed health %d times in all, want 2", n)
	}
}

func TestHealthAndMetrics(t *testing.T) {
	ts := startTestServer(t, t.TempDir())
	if err := ts.client.Create(context.Background(), newWorkload("counted", 1)); err != nil {
		t.Fatal(err)
	}
	code, body := get(t, anonymousClient(t, ts), ts.srv.URL()+"/health")
	var h Health
	if err := json.Unmarshal([]byte(body), &h); err != nil || code != 200 {
		t.Fatalf("/health: %d %q: %v", code, body, err)
	}
	if h.Status != "ok" || h.Components["state_store"].Status != "ok" {
		t.Fatalf("/health: %+v", h)
	}

	hc, err := rest.HTTPClientFor(ts.cfg)
	if err != nil {
		t.Fatal(err)
	}
	code, metrics := get(t, hc, ts.srv.URL()+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`skiff_objects_stored{group="skiff.dev",kind="Workload"} 1`,
		`skiff_objects_stored{group="",kind="Namespace"} 3`,
		"apiserver_request_total",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestAuditLogRecordsWrites(t *testing.T) {
	dir := t.TempDir()
	ts := startTestServer(t, dir)
	if err := ts.client.Create(context.Background(), newWorkload("audited", 1)); err != nil {
		t.Fatal(err)
	}
	// The create's entry, at Metadata level: who did what to which
	// object, without its bodies (the default policy).
	var entry map[string]any
	eventually(t, 20*time.Second, "audit entry for the create", func() bool {
		data, _ := os.ReadFile(ts.srv.dir.file(auditLogFile))
		for _, line := range strings.Split(string(data), "\n") {
			var e map[string]any
			if json.Unmarshal([]byte(line), &e) != nil {
				continue
			}
			ref, _ := e["objectRef"].(map[string]any)
			if e["verb"] == "create" && ref["name"] == "audited" && e["stage"] == "ResponseComplete" {
				entry = e
				return true
			}
		}
		return false
	})
	if entry["level"] != "Metadata" {
		t.Errorf("the create is audited at level %v; want Metadata", entry["level"])
	}
	for _, body := range []string{"requestObject", "responseObject"} {
		if _, ok := entry[body]; ok {
			t.Errorf("the create's audit entry holds its %s", body)
		}
	}
}

func TestServerSideApplyTracksOwnership(t *testing.T) {
	ts := startTestServer(t, t.TempDir())
	ctx := context.Background()
	apply := func(manager string, replicas int32, force bool) error {
		w := newWorkload("applied", replicas)
		w.TypeMeta = metav1.TypeMeta{APIVersion: "skiff.dev/v1alpha1", Kind: "Workload"}
		opts := []client.PatchOption{client.FieldOwner(manager)}
		if force {
			opts = append(opts, client.ForceOwnership)
		}
		return ts.client.Patch(ctx, w, client.Apply, opts...)
	}
	if err := apply("alice", 2, false); err != nil {
		t.Fatalf("apply: %v", err)
	}
	var w skiffv1alpha1.Workload
	if err := ts.client.Get(ctx, client.ObjectKey{Namespace: "default", Name: "applied"}, &w); err != nil {
		t.Fatal(err)
	}
	owned := false
	for _, mf := range w.ManagedFields {
		if mf.Manager == "alice" && mf.Operation == metav1.ManagedFieldsOperationApply {
			owned = true
			if strings.Contains(string(mf.FieldsV1.Raw), `"f:status"`) {
				t.Errorf("apply recorded ownership of status: %s", mf.FieldsV1.Raw)
			}
		}
	}
	if !owned {
		t.Fatalf("no Apply entry for alice in %+v", w.ManagedFields)
	}
	if err := apply("bob", 5, false); err == nil || !strings.Contains(err.Error(), "conflict") {
		t.Fatalf("conflicting apply by bob: %v, want a conflict", err)
	}
	if err := apply("bob", 5, true); err != nil {
		t.Fatalf("forced apply: %v", err)
	}
}

func TestWatchOverWebSocket(t *testing.T) {
	ts := startTestServer(t, t.TempDir())
	tlsCfg, err := rest.TLSConfigFor(ts.cfg)
	if err != nil {
		t.Fatal(err)
	}
	dialer := websocket.Dialer{TLSClientConfig: tlsCfg, HandshakeTimeout: 10 * time.Second}
	url := strings.Replace(ts.srv.URL(), "https://", "wss://", 1) + "/apis/skiff.dev/v1alpha1/namespaces/default/workloads?watch=true"
	// The server's WebSocket handshake requires an Origin, as browsers send.
	conn, resp, err := dialer.Dial(url, http.Header{"Origin": {ts.srv.URL()}})
	if err != nil {
		t.Fatalf("websocket dial: %v (%v)", err, resp)
	}
	defer conn.Close()
	w := newWorkload("ws", 1)
	if err := ts.client.Create(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("websocket read: %v", err)
		}
		var ev struct {
			Type   string          `json:"type"`
			Object json.RawMessage `json:"object"`
		}
		if err := json.Unmarshal(msg, &ev); err != nil {
			t.Fatalf("event %q: %v", msg, err)
		}
		if ev.Type == "ADDED" && strings.Contains(string(ev.Object), `"name":"ws"`) {
			return
		}
	}
}

func TestExternalEtcd(t *testing.T) {
	ctx := context.Background()
	etcd, err := startEmbeddedEtcd(ctx, t.TempDir(), etcdOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(etcd.Close) // runs after the server's cleanup stops it
	cfg := DefaultConfig()
	cfg.DataDir, cfg.Listen = t.TempDir(), "127.0.0.1:0"
	cfg.EtcdServers = []string{etcd.Endpoint}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	ts := &testServer{srv: srv, cancel: stop, done: make(chan error, 1)}
	go func() { ts.done <- srv.Run(runCtx) }()
	t.Cleanup(ts.stop)
	ts.waitReady(t)
	if _, err := os.Stat(ts.srv.dir.file("etcd")); err == nil {
		t.Fatal("an embedded etcd was started despite --etcd-servers")
	}
	kube, err := newEtcdClient([]string{etcd.Endpoint}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer kube.Close()
	eventually(t, 20*time.Second, "default namespace in the external etcd", func() bool {
		resp, err := kube.Get(ctx, "/registry/namespaces/default")
		return err == nil && resp.Count == 1
	})
}

func TestLongDataDirIsRefusedByName(t *testing.T) {
	long := filepath.Join(t.TempDir(), strings.Repeat("d", 120))
	_, err := startEmbeddedEtcd(context.Background(), long, etcdOptions{})
	if err == nil || !strings.Contains(err.Error(), "--data-dir") {
		t.Fatalf("embedded etcd in a %d-byte path: %v, want an error naming --data-dir", len(long), err)
	}
}
