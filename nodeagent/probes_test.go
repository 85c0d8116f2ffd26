package nodeagent

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/nodeagent/runtime"
)

// execRuntime is a runtime whose Exec answers with the exit code set.
type execRuntime struct {
	runtime.Runtime
	code atomic.Int32
}

func (e *execRuntime) Exec(context.Context, string, runtime.ExecOptions) (int, error) {
	return int(e.code.Load()), nil
}

// recorded collects the Events a prober records.
type recorded struct {
	mu   sync.Mutex
	msgs []string
}

func (r *recorded) record(_ context.Context, _ *skiffv1alpha1.Instance, reason, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, reason+": "+msg)
}

func (r *recorded) has(sub string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.msgs {
		if strings.Contains(m, sub) {
			return true
		}
	}
	return false
}

// waitVerdict observes until cond holds or 15 s pass.
func waitVerdict(t *testing.T, p *prober, c *skiffv1alpha1.Container, ip string, started time.Time, what string, cond func(probeVerdict) bool) probeVerdict {
	t.Helper()
	inst := &skiffv1alpha1.Instance{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"}}
	deadline := time.Now().Add(15 * time.Second)
	for {
		v := p.observe(inst, c, "web-main", sandbox{ip: ip}, started)
		if cond(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: verdict %+v after 15 s", what, v)
		}
		select {
		case <-p.changed:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func quickProbe(p skiffv1alpha1.Probe) *skiffv1alpha1.Probe {
	p.TimeoutSeconds, p.PeriodSeconds = 1, 1
	if p.SuccessThreshold == 0 {
		p.SuccessThreshold = 1
	}
	if p.FailureThreshold == 0 {
		p.FailureThreshold = 2
	}
	return &p
}

// TestReadinessFollowsAnHTTPProbe: ready only after the endpoint answers
// 2xx, not ready again after failureThreshold failures (with an Unhealthy
// Event), and a named port resolves to the container's port.
func TestReadinessFollowsAnHTTPProbe(t *testing.T) {
	var healthy atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ready" || r.Header.Get("X-Probe") != "yes" {
			http.Error(w, "wrong request", http.StatusBadRequest)
			return
		}
		if !healthy.Load() {
			http.Error(w, "warming up", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	portNum, _ := strconv.Atoi(port)
	ev := &recorded{}
	p := newProber(&execRuntime{}, ev.record)
	defer p.cancel()
	c := &skiffv1alpha1.Container{Name: "main", Ports: []skiffv1alpha1.ContainerPort{{Name: "http", ContainerPort: int32(portNum)}},
		ReadinessProbe: quickProbe(skiffv1alpha1.Probe{HTTPGet: &skiffv1alpha1.HTTPGetAction{
			Path: "/ready", Port: intstr.FromString("http"), Scheme: skiffv1alpha1.URISchemeHTTP,
			HTTPHeaders: []skiffv1alpha1.HTTPHeader{{Name: "X-Probe", Value: "yes"}},
		}})}
	started := time.Now()

	v := p.observe(&skiffv1alpha1.Instance{}, c, "web-main", sandbox{ip: host}, started)
	if v.ready || !v.started {
		t.Fatalf("first verdict %+v: want started, not ready before any probe passed", v)
	}
	waitVerdict(t, p, c, host, started, "503 for two periods", func(v probeVerdict) bool { return ev.has("Readiness probe failed") })
	if v := p.observe(&skiffv1alpha1.Instance{}, c, "web-main", sandbox{ip: host}, started); v.ready {
		t.Fatalf("ready while the endpoint answers 503")
	}
	healthy.Store(true)
	waitVerdict(t, p, c, host, started, "204", func(v probeVerdict) bool { return v.ready })
	healthy.Store(false)
	waitVerdict(t, p, c, host, started, "503 again", func(v probeVerdict) bool { return !v.ready })
	if v := p.observe(&skiffv1alpha1.Instance{}, c, "web-main", sandbox{ip: host}, started); v.unhealthy != "" {
		t.Errorf("a readiness failure made the container unhealthy: %q", v.unhealthy)
	}
}

// TestLivenessGivesUpAfterFailureThreshold: an exec liveness probe that
// passes keeps probing, and once it fails failureThreshold times makes the
// container unhealthy, with an Unhealthy Event naming the probe and its
// output; a new run starts over.
func TestLivenessGivesUpAfterFailureThreshold(t *testing.T) {
	rt := &execRuntime{}
	ev := &recorded{}
	p := newProber(rt, ev.record)
	defer p.cancel()
	c := &skiffv1alpha1.Container{Name: "main", LivenessProbe: quickProbe(skiffv1alpha1.Probe{
		Exec: &skiffv1alpha1.ExecAction{Command: []string{"cat", "/tmp/healthy"}}, FailureThreshold: 2,
	})}
	first := time.Now()
	p.observe(&skiffv1alpha1.Instance{}, c, "web-main", sandbox{}, first)
	// Healthy for a window of two periods (something that must not
	// happen needs one), then failing.
	time.Sleep(2 * time.Second)
	if v := p.observe(&skiffv1alpha1.Instance{}, c, "web-main", sandbox{}, first); v.unhealthy != "" {
		t.Fatalf("unhealthy while the probe passes: %+v", v)
	}
	rt.code.Store(1)
	v := waitVerdict(t, p, c, "", first, "exit 1 twice", func(v probeVerdict) bool { return v.unhealthy != "" })
	if !strings.Contains(v.unhealthy, "Liveness probe failed") || !strings.Contains(v.unhealthy, `"cat /tmp/healthy" exited with 1`) {
		t.Errorf("unhealthy %q: want the probe and its exit code", v.unhealthy)
	}
	if !ev.has("Unhealthy: container \"main\": Liveness probe failed") {
		t.Errorf("events %v: want an Unhealthy Event", ev.msgs)
	}
	rt.code.Store(0)
	if v := p.observe(&skiffv1alpha1.Instance{}, c, "web-main", sandbox{}, first.Add(time.Second)); v.unhealthy != "" {
		t.Errorf("the next run inherited the last one's verdict: %+v", v)
	}
}

// TestStartupProbeHoldsReadiness: readiness is not probed (so not ready)
// until the startup probe passed; a TCP probe passes once the port listens.
func TestStartupProbeHoldsReadiness(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // nothing listens yet
	p := newProber(&execRuntime{}, (&recorded{}).record)
	defer p.cancel()
	c := &skiffv1alpha1.Container{Name: "main",
		StartupProbe:   quickProbe(skiffv1alpha1.Probe{TCPSocket: &skiffv1alpha1.TCPSocketAction{Port: intstr.FromInt(port)}, FailureThreshold: 30}),
		ReadinessProbe: quickProbe(skiffv1alpha1.Probe{Exec: &skiffv1alpha1.ExecAction{Command: []string{"true"}}}),
	}
	started := time.Now()
	// Something that must not happen needs a window: two periods, in which
	// readiness (always passing) would have made it ready were it not held.
	time.Sleep(2 * time.Second)
	if v := p.observe(&skiffv1alpha1.Instance{}, c, "web-main", sandbox{ip: "127.0.0.1"}, started); v.started || v.ready {
		t.Fatalf("verdict %+v before the port listens: want neither started nor ready", v)
	}
	l, err = net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	waitVerdict(t, p, c, "127.0.0.1", started, "port open", func(v probeVerdict) bool { return v.started && v.ready })
}

// TestNoProbesMeansReady: a container without probes, or a node without a
// prober (simulated containers), is started and ready while it runs.
func TestNoProbesMeansReady(t *testing.T) {
	var p *prober
	c := &skiffv1alpha1.Container{Name: "main", ReadinessProbe: &skiffv1alpha1.Probe{}}
	if v := p.observe(&skiffv1alpha1.Instance{}, c, "x", sandbox{}, time.Now()); !v.started || !v.ready {
		t.Errorf("nil prober: %+v", v)
	}
	q := newProber(&execRuntime{}, (&recorded{}).record)
	defer q.cancel()
	if v := q.observe(&skiffv1alpha1.Instance{}, &skiffv1alpha1.Container{Name: "main"}, "x", sandbox{}, time.Now()); !v.started || !v.ready {
		t.Errorf("no probes: %+v", v)
	}
}
