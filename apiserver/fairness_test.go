package apiserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"skiff.dev/skiff/identity"
)

// TestFairQueueTakesTurns: with every seat taken, a flood from one flow
// does not make another flow wait behind it: freed seats go to the flows
// in turn.
func TestFairQueueTakesTurns(t *testing.T) {
	q := newFairQueue(1, 100, 100, time.Minute)
	if err := q.acquire(t.Context(), "flood"); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	enqueue := func(name string) {
		wg.Go(func() {
			if err := q.acquire(context.Background(), name); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			q.release(name)
		})
		waitQueued(t, q, name)
	}
	for range 5 {
		enqueue("flood")
	}
	enqueue("other")
	q.release("flood")
	wg.Wait()
	want := []string{"flood", "other", "flood", "flood", "flood", "flood"}
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Errorf("seats went to %v, want %v", order, want)
	}
	if q.busy != 0 || len(q.flows) != 0 || len(q.ring) != 0 {
		t.Errorf("after all: %d busy, %d flows, %d in the ring", q.busy, len(q.flows), len(q.ring))
	}
}

// TestFairQueueCapsAFlow: one identity runs at most perFlow requests at
// once, even with seats free; another identity's request runs at once.
func TestFairQueueCapsAFlow(t *testing.T) {
	q := newFairQueue(10, 2, 100, time.Minute)
	for range 2 {
		if err := q.acquire(t.Context(), "flood"); err != nil {
			t.Fatal(err)
		}
	}
	third := make(chan error, 1)
	go func() { third <- q.acquire(context.Background(), "flood") }()
	waitQueued(t, q, "flood")
	select {
	case err := <-third:
		t.Fatalf("a third request of a flow capped at 2 ran: %v", err)
	default:
	}
	if err := q.acquire(t.Context(), "other"); err != nil {
		t.Fatalf("another flow with seats free: %v", err)
	}
	q.release("flood")
	if err := <-third; err != nil {
		t.Fatalf("the third request after a release: %v", err)
	}
	for _, name := range []string{"flood", "flood", "other"} {
		q.release(name)
	}
	if q.busy != 0 || len(q.flows) != 0 || len(q.ring) != 0 {
		t.Errorf("after all: %d busy, %d flows, %d in the ring", q.busy, len(q.flows), len(q.ring))
	}
}

// waitQueued waits until one more request of name waits than before.
func waitQueued(t *testing.T, q *fairQueue, name string) {
	t.Helper()
	q.mu.Lock()
	before := 0
	if f := q.flows[name]; f != nil {
		before = len(f.waiting)
	}
	q.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for {
		q.mu.Lock()
		n := 0
		if f := q.flows[name]; f != nil {
			n = len(f.waiting)
		}
		q.mu.Unlock()
		if n > before {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no request of %s queued within 5 s", name)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestFairQueueRefuses: a full queue refuses at once, a wait that runs
// out or is cancelled gives up, and no seat is lost either way.
func TestFairQueueRefuses(t *testing.T) {
	q := newFairQueue(1, 1, 1, 50*time.Millisecond)
	if err := q.acquire(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- q.acquire(context.Background(), "b") }()
	waitQueued(t, q, "b")
	if err := q.acquire(t.Context(), "b"); !errors.Is(err, errNoSeat) {
		t.Errorf("a second waiter in a queue of one: %v, want %v", err, errNoSeat)
	}
	if err := <-done; !errors.Is(err, errNoSeat) {
		t.Errorf("a wait longer than maxWait: %v, want %v", err, errNoSeat)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- q.acquire(ctx, "c") }()
	waitQueued(t, q, "c")
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled wait: %v", err)
	}
	q.release("a")
	if err := q.acquire(t.Context(), "d"); err != nil {
		t.Errorf("the freed seat: %v", err)
	}
	q.release("d")
	if q.busy != 0 || len(q.flows) != 0 || len(q.ring) != 0 {
		t.Errorf("after all: %d busy, %d flows, %d in the ring", q.busy, len(q.flows), len(q.ring))
	}
}

// TestFloodLeavesOthersATurn floods the API server from one identity
// with more concurrent requests than the library's global limit (400)
// allowed, and checks that another identity is never refused and waits
// within a bound (its latencies are logged: the figure for the docs).
func TestFloodLeavesOthersATurn(t *testing.T) {
	if testing.Short() {
		t.Skip("floods an API server for seconds")
	}
	ts := startTestServer(t, t.TempDir())
	flooder := keyClient(t, ts, "flooder", 600)
	other := keyClient(t, ts, "other", 1)
	do := func(c *http.Client, method, url, body string) (int, error) {
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	// The flood lists 1,000 Events (about 1.5 MB) over and over: each
	// request holds its seat for a while, as a real flood's do.
	events := ts.srv.URL() + "/api/v1/namespaces/default/events"
	msg := strings.Repeat("x", 1000)
	for i := range 1000 {
		body := fmt.Sprintf(`{"apiVersion":"v1","kind":"Event","metadata":{"name":"e%d"},"involvedObject":{"kind":"Node","name":"n"},"reason":"Flood","message":%q}`, i, msg)
		if code, err := do(other, http.MethodPost, events, body); err != nil || code != http.StatusCreated {
			t.Fatalf("event %d: %d, %v", i, code, err)
		}
	}
	anon := anonymousClient(t, ts)
	anon.Transport.(*http.Transport).MaxConnsPerHost = 600
	floods := []struct {
		name  string
		flood func() (int, error)
	}{
		{"none", nil},
		{"600 concurrent lists of 1,000 Events from one identity", func() (int, error) { return do(flooder, http.MethodGet, events, "") }},
		{"600 concurrent anonymous requests", func() (int, error) { return do(anon, http.MethodGet, ts.srv.URL()+"/api/v1/namespaces", "") }},
		{"600 concurrent anonymous probes", func() (int, error) { return do(anon, http.MethodGet, ts.srv.URL()+"/readyz", "") }},
	}
	for _, f := range floods {
		p50, p99, sent, refused := duringFlood(t, f.flood, func() (int, error) {
			return do(other, http.MethodGet, ts.srv.URL()+"/api/v1/namespaces/default", "")
		}, func() (int, error) { return do(anon, http.MethodGet, ts.srv.URL()+"/readyz", "") })
		t.Logf("flood %s (%d sent, %d refused with 429): another identity's p50 %s, p99 %s",
			f.name, sent, refused, p50.Round(time.Millisecond), p99.Round(time.Millisecond))
		if p99 > 5*time.Second {
			t.Errorf("flood %s: another identity's p99 %s, want under 5 s", f.name, p99)
		}
	}
}

// duringFlood runs flood from 600 goroutines and meanwhile 40 requests of
// other and of probe one after another, which must all succeed; it
// returns other's latencies and the flood's counts.
func duringFlood(t *testing.T, flood, other, probe func() (int, error)) (p50, p99 time.Duration, sent, refused int64) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var nSent, nRefused atomic.Int64
	if flood != nil {
		for range 600 {
			wg.Go(func() {
				for ctx.Err() == nil {
					code, err := flood()
					nSent.Add(1)
					if err == nil && code == http.StatusTooManyRequests {
						nRefused.Add(1)
					}
				}
			})
		}
		// The flood is on: every goroutine has had answers.
		deadline := time.Now().Add(30 * time.Second)
		for nSent.Load() < 2*600 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	var took []time.Duration
	for i := range 40 {
		start := time.Now()
		code, err := other()
		took = append(took, time.Since(start))
		if err != nil || code != http.StatusOK {
			t.Errorf("request %d of another identity during the flood: %d, %v", i, code, err)
		}
		if code, err := probe(); err != nil || code != http.StatusOK {
			t.Errorf("probe %d during the flood: %d, %v", i, code, err)
		}
	}
	stop()
	wg.Wait()
	slices.Sort(took)
	return took[len(took)/2], took[len(took)*99/100], nSent.Load(), nRefused.Load()
}

// keyClient is an HTTP/1.1 client (a connection a request, as many
// clients are) with a new key trusted as name.
func keyClient(t *testing.T, ts *testServer, name string, conns int) *http.Client {
	t.Helper()
	id, err := identity.New()
	if err != nil {
		t.Fatal(err)
	}
	ts.srv.trust.Add(id.Public(), identity.Principal{Name: name, Groups: []string{"system:masters"}})
	certPEM, _ := id.ClientCertificate(name, time.Now())
	keyPEM, _ := id.KeyPEM()
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	c := anonymousClient(t, ts)
	tr := c.Transport.(*http.Transport)
	tr.TLSClientConfig.Certificates = []tls.Certificate{cert}
	tr.MaxIdleConnsPerHost, tr.MaxConnsPerHost = conns, conns
	c.Timeout = time.Minute
	t.Cleanup(tr.CloseIdleConnections)
	return c
}
