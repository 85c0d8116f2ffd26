package failover_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/rest"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/identity"
	"skiff.dev/skiff/internal/failover"
)

// servingCert is a certificate like a cluster's shared one, except that
// it names no address at all: only identity.ServingName. A client that
// reaches a server with it verifies that name, whichever address it dials.
func servingCert(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{identity.ServingName},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// cluster is a few TLS servers sharing one certificate.
type cluster struct {
	ca      []byte
	servers []*server
	// list is what ServersPath answers; nil answers 404.
	mu   sync.Mutex
	list []string
}

// server is one of them: it answers its name and records the requests.
type server struct {
	name    string
	cluster *cluster
	*httptest.Server
	mu       sync.Mutex
	requests []string // "METHOD PATH BODY"
	// abort, when set, drops the connection of every request but the
	// list's once it is read: the request may have been acted on.
	abort bool
	// status, when set, answers every request but the list's with it.
	status int
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.requests = append(s.requests, strings.TrimSpace(r.Method+" "+r.URL.Path+" "+string(body)))
	abort, status := s.abort, s.status
	s.mu.Unlock()
	if r.URL.Path == skiffv1alpha1.ServersPath {
		s.cluster.serveList(w)
		return
	}
	if abort {
		panic(http.ErrAbortHandler)
	}
	if status != 0 {
		w.WriteHeader(status)
	}
	io.WriteString(w, s.name)
}

func (s *server) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

func startCluster(t *testing.T, names ...string) *cluster {
	t.Helper()
	cert, ca := servingCert(t)
	c := &cluster{ca: ca}
	for _, name := range names {
		s := &server{name: name, cluster: c}
		s.Server = httptest.NewUnstartedServer(s)
		s.EnableHTTP2 = true
		s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		s.StartTLS()
		t.Cleanup(s.Close)
		c.servers = append(c.servers, s)
	}
	return c
}

func (c *cluster) serveList(w http.ResponseWriter) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.list == nil {
		http.NotFound(w, nil)
		return
	}
	json.NewEncoder(w).Encode(map[string][]string{"servers": c.list})
}

func (c *cluster) setList(list ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.list = list
}

func (c *cluster) urls() []string {
	var out []string
	for _, s := range c.servers {
		out = append(out, s.URL)
	}
	return out
}

// client is a client-go HTTP client of servers, pinning c's certificate.
func (c *cluster) client(t *testing.T, servers *failover.Servers) *http.Client {
	t.Helper()
	cfg := &rest.Config{TLSClientConfig: rest.TLSClientConfig{CAData: c.ca}}
	servers.Apply(cfg)
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { utilnet.CloseIdleConnectionsFor(hc.Transport) })
	return hc
}

// deadURL is an https:// URL nothing listens at.
func deadURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	return "https://" + ln.Addr().String()
}

func newServers(t *testing.T, urls ...string) *failover.Servers {
	t.Helper()
	s, err := failover.New(urls)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// do sends method to path (on whichever server) and returns the answer.
func do(t *testing.T, hc *http.Client, method, path, body string) (string, error) {
	t.Helper()
	req, err := http.NewRequest(method, "https://unused.invalid"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Body = &onceBody{Reader: strings.NewReader(body)}
		req.GetBody = func() (io.ReadCloser, error) { return &onceBody{Reader: strings.NewReader(body)}, nil }
		req.ContentLength = int64(len(body))
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestStoppedServerIsSkipped(t *testing.T) {
	c := startCluster(t, "a", "b", "c")
	servers := newServers(t, c.urls()...)
	hc := c.client(t, servers)
	if got, err := do(t, hc, http.MethodGet, "/x", ""); err != nil || got != "a" {
		t.Fatalf("GET with every server up: %q, %v; want a", got, err)
	}
	// A connection open to a server when it stops may fail a request sent
	// on it (TestFailureAfterSendingMovesOnWithoutResending): here the
	// client holds none, and only dials.
	c.servers[0].Close()
	utilnet.CloseIdleConnectionsFor(hc.Transport)
	for i := range 3 {
		if got, err := do(t, hc, http.MethodGet, "/x", ""); err != nil || got != "b" {
			t.Fatalf("GET %d with a stopped: %q, %v; want b", i, got, err)
		}
	}
	if servers.Current() != c.servers[1].URL {
		t.Errorf("current %s, want b's %s", servers.Current(), c.servers[1].URL)
	}
	c.servers[1].Close()
	utilnet.CloseIdleConnectionsFor(hc.Transport)
	if got, err := do(t, hc, http.MethodGet, "/x", ""); err != nil || got != "c" {
		t.Fatalf("GET with a and b stopped: %q, %v; want c", got, err)
	}
	if n := len(c.servers[2].got()); n != 1 {
		t.Errorf("c served %d requests, want 1", n)
	}
}

func TestDialFailureResendsOnceElsewhere(t *testing.T) {
	c := startCluster(t, "b", "c")
	servers := newServers(t, append([]string{deadURL(t)}, c.urls()...)...)
	hc := c.client(t, servers)
	got, err := do(t, hc, http.MethodPost, "/things", "payload")
	if err != nil || got != "b" {
		t.Fatalf("POST with the first server down: %q, %v; want b's answer", got, err)
	}
	if want := []string{"POST /things payload"}; !slices.Equal(c.servers[0].got(), want) {
		t.Errorf("b got %q, want %q: the whole request, once", c.servers[0].got(), want)
	}
	if got := c.servers[1].got(); len(got) != 0 {
		t.Errorf("c got %q, want nothing", got)
	}
}

func TestEveryServerTriedOnce(t *testing.T) {
	dead := []string{deadURL(t), deadURL(t), deadURL(t)}
	servers := newServers(t, dead...)
	var mu sync.Mutex
	var tried []string
	rt := servers.Wrap(roundTripFunc(func(r *http.Request) (*http.Response, error) {
		mu.Lock()
		tried = append(tried, "https://"+r.URL.Host)
		mu.Unlock()
		return http.DefaultTransport.RoundTrip(r)
	}))
	req, _ := http.NewRequest(http.MethodGet, dead[0]+"/x", nil)
	if _, err := rt.RoundTrip(req); err == nil {
		t.Fatal("every server down: no error")
	}
	if !slices.Equal(tried, dead) {
		t.Errorf("tried %q, want each server once, in order: %q", tried, dead)
	}
}

// onceBody is a request body that cannot be read once closed, as a
// file's: a transport closes a request's body whether it sent it or not,
// so a request sent again needs a new one.
type onceBody struct {
	*strings.Reader
	closed bool
}

func (b *onceBody) Read(p []byte) (int, error) {
	if b.closed {
		return 0, errors.New("read after close")
	}
	return b.Reader.Read(p)
}

func (b *onceBody) Close() error { b.closed = true; return nil }

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestFailureAfterSendingMovesOnWithoutResending(t *testing.T) {
	c := startCluster(t, "a", "b")
	c.servers[0].abort = true
	servers := newServers(t, c.urls()...)
	hc := c.client(t, servers)
	if _, err := do(t, hc, http.MethodPost, "/things", "payload"); err == nil {
		t.Fatal("POST whose connection a dropped: no error")
	}
	if got := c.servers[1].got(); len(got) != 0 {
		t.Fatalf("b got %q: a request that may have been acted on was resent", got)
	}
	if got, err := do(t, hc, http.MethodGet, "/x", ""); err != nil || got != "b" {
		t.Errorf("the next GET: %q, %v; want b", got, err)
	}
}

// TestServerErrorMovesOn: a server that answers 503 or 504 (say, its
// etcd has lost its quorum) answers this request, and the next goes
// elsewhere.
func TestServerErrorMovesOn(t *testing.T) {
	for _, code := range []int{http.StatusInternalServerError, http.StatusServiceUnavailable, http.StatusGatewayTimeout} {
		c := startCluster(t, "a", "b")
		c.servers[0].status = code
		servers := newServers(t, c.urls()...)
		hc := c.client(t, servers)
		if got, err := do(t, hc, http.MethodPost, "/things", "payload"); err != nil || got != "a" {
			t.Fatalf("%d: the POST: %q, %v; want a's answer, not resent", code, got, err)
		}
		if got := c.servers[1].got(); len(got) != 0 {
			t.Fatalf("%d: b got %q: an answered request was resent", code, got)
		}
		if got, err := do(t, hc, http.MethodGet, "/x", ""); err != nil || got != "b" {
			t.Errorf("%d: the next GET: %q, %v; want b", code, got, err)
		}
	}
}

func TestCancelledRequestKeepsServer(t *testing.T) {
	c := startCluster(t, "a", "b")
	servers := newServers(t, c.urls()...)
	hc := c.client(t, servers)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.servers[0].URL+"/x", nil)
	if _, err := hc.Do(req); err == nil {
		t.Fatal("cancelled request: no error")
	}
	if servers.Current() != c.servers[0].URL {
		t.Errorf("current %s after a cancelled request, want a's %s", servers.Current(), c.servers[0].URL)
	}
}

func TestRefresherLearnsTheList(t *testing.T) {
	c := startCluster(t, "a", "b", "c")
	a, b, cc := c.servers[0].URL, c.servers[1].URL, c.servers[2].URL
	c.setList(a, b)
	servers := newServers(t, a)
	changed := make(chan []string, 10)
	r := &failover.Refresher{Servers: servers, Client: c.client(t, servers), Interval: 10 * time.Millisecond,
		Changed: func(list []string) { changed <- list }}
	stop := start(t, r)
	defer stop()
	waitList(t, changed, a, b)
	c.setList(b, cc)
	waitList(t, changed, b, cc)
	if servers.Current() != b {
		t.Errorf("current %s, want b (a is no longer listed)", servers.Current())
	}
}

func TestRefresherAsksSoonAfterFailover(t *testing.T) {
	c := startCluster(t, "a", "b", "c")
	a, b, cc := c.servers[0].URL, c.servers[1].URL, c.servers[2].URL
	c.setList(a, b)
	servers := newServers(t, a)
	hc := c.client(t, servers)
	changed := make(chan []string, 10)
	r := &failover.Refresher{Servers: servers, Client: hc, Interval: time.Hour, Changed: func(list []string) { changed <- list }}
	stop := start(t, r)
	defer stop()
	waitList(t, changed, a, b) // the refresh at start
	c.setList(b, cc)
	c.servers[0].Close()
	utilnet.CloseIdleConnectionsFor(hc.Transport)
	if got, err := do(t, hc, http.MethodGet, "/x", ""); err != nil || got != "b" {
		t.Fatalf("GET with a stopped: %q, %v; want b", got, err)
	}
	waitList(t, changed, b, cc)
}

func TestRefreshWithoutListKeepsServers(t *testing.T) {
	c := startCluster(t, "a", "b")
	servers := newServers(t, c.urls()...)
	r := &failover.Refresher{Servers: servers, Client: c.client(t, servers)}
	for _, answer := range []struct {
		name string
		list []string
	}{{"404", nil}, {"an empty list", []string{}}} {
		c.mu.Lock()
		c.list = answer.list
		c.mu.Unlock()
		if err := r.Refresh(context.Background()); err != nil {
			t.Fatalf("refresh answered %s: %v", answer.name, err)
		}
		if !slices.Equal(servers.List(), c.urls()) {
			t.Errorf("refresh answered %s: list %q, want the known %q", answer.name, servers.List(), c.urls())
		}
	}
}

func TestRefreshKeeps(t *testing.T) {
	c := startCluster(t, "a", "b")
	a, b := c.servers[0].URL, c.servers[1].URL
	local := strings.Replace(a, "127.0.0.1", "localhost", 1) // a, by a name the API does not list
	c.setList(a, b)
	servers := newServers(t, local)
	r := &failover.Refresher{Servers: servers, Client: c.client(t, servers), Keep: []string{local}}
	if err := r.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if want := []string{a, b, local}; !slices.Equal(servers.List(), want) {
		t.Errorf("list %q, want %q", servers.List(), want)
	}
	if servers.Current() != local {
		t.Errorf("current %s, want the kept %s", servers.Current(), local)
	}
}

func TestReplace(t *testing.T) {
	const a, b, c = "https://10.0.0.1:6443", "https://10.0.0.2:6443", "https://10.0.0.3:6443"
	for _, tc := range []struct {
		name        string
		current     []string // the list, its first current
		replace     []string
		want        []string
		wantCurrent string
		wantErr     bool
	}{
		{name: "current still listed", current: []string{b, a}, replace: []string{a, b, c}, want: []string{a, b, c}, wantCurrent: b},
		{name: "current gone", current: []string{b, a}, replace: []string{a, c}, want: []string{a, c}, wantCurrent: a},
		{name: "normalized and deduplicated", current: []string{a}, replace: []string{a + "/", " " + b, b}, want: []string{a, b}, wantCurrent: a},
		{name: "empty", current: []string{a}, replace: nil, want: []string{a}, wantCurrent: a, wantErr: true},
		{name: "not https", current: []string{a}, replace: []string{b, "http://10.0.0.9:80"}, want: []string{a}, wantCurrent: a, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServers(t, tc.current...)
			_, err := s.Replace(tc.replace)
			if (err != nil) != tc.wantErr {
				t.Errorf("err %v, want error %v", err, tc.wantErr)
			}
			if !slices.Equal(s.List(), tc.want) || s.Current() != tc.wantCurrent {
				t.Errorf("list %q current %s, want %q current %s", s.List(), s.Current(), tc.want, tc.wantCurrent)
			}
		})
	}
}

func TestFailedMovesOnOnce(t *testing.T) {
	const a, b, c = "https://10.0.0.1:6443", "https://10.0.0.2:6443", "https://10.0.0.3:6443"
	s := newServers(t, a, b, c)
	s.Failed(a)
	s.Failed(a) // a second request that failed on a: b stays
	if s.Current() != b {
		t.Errorf("current %s, want %s", s.Current(), b)
	}
	s.Failed(b)
	s.Failed(c)
	if s.Current() != a {
		t.Errorf("current %s, want %s (the list wraps)", s.Current(), a)
	}
}

func TestNewRefusesBadURLs(t *testing.T) {
	for _, list := range [][]string{nil, {"http://10.0.0.1:6443"}, {"https://"}, {"https://10.0.0.1:6443/api"}, {"10.0.0.1:6443"}} {
		if _, err := failover.New(list); err == nil {
			t.Errorf("New(%q): no error", list)
		}
	}
	if got := failover.Split(" https://a:1, ,https://b:2,"); !slices.Equal(got, []string{"https://a:1", "https://b:2"}) {
		t.Errorf("Split: %q", got)
	}
}

// start runs r until stop, which waits for it to return.
func start(t *testing.T, r *failover.Refresher) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Start(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Start: %v", err)
		}
	}
}

// waitList waits until Changed reports want.
func waitList(t *testing.T, changed <-chan []string, want ...string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case got := <-changed:
			if slices.Equal(got, want) {
				return
			}
		case <-deadline:
			t.Fatalf("the list never became %q", want)
		}
	}
}
