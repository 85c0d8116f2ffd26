package nodeagent

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/event"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/nodeagent/network"
	"skiff.dev/skiff/nodeagent/runtime"
)

// Probes, as the kubelet runs them: a worker per running container runs
// its startup probe until it passes, then its liveness and readiness
// probes, each at its own period, and tells the reconciler (through
// events) when what they conclude changes. HTTP and TCP probes connect to
// the Instance's address from inside its network namespace (an app that
// listens on loopback only fails them, as with the kubelet's); exec
// probes run in the container through the runtime.

// probeVerdict is what a container's probes conclude.
type probeVerdict struct {
	// started: the startup probe passed, or there is none.
	started bool
	// ready: the readiness probe passes (after started), or there is none.
	ready bool
	// unhealthy, when set, says why the container must be restarted: its
	// liveness probe failed, or its startup probe never passed.
	unhealthy string
}

// prober runs the probe workers of this node's containers.
type prober struct {
	rt runtime.Runtime
	// changed receives the Instance whose verdict changed, to reconcile it.
	changed chan event.GenericEvent
	// record writes an Event about the Instance.
	record func(ctx context.Context, inst *skiffv1alpha1.Instance, reason, msg string)
	// ctx ends every worker; Run cancels it when the agent stops.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	workers map[string]*probeWorker // by container id
}

func newProber(rt runtime.Runtime, record func(context.Context, *skiffv1alpha1.Instance, string, string)) *prober {
	ctx, cancel := context.WithCancel(context.Background())
	return &prober{rt: rt, record: record, ctx: ctx, cancel: cancel,
		changed: make(chan event.GenericEvent, 256), workers: map[string]*probeWorker{}}
}

// probeHTTPClient connects inside the network namespace at netns ("" the
// agent's own), follows no redirect to another host and checks no
// certificate, as the kubelet's prober.
func probeHTTPClient(dial func(ctx context.Context, netw, addr string) (net.Conn, error)) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext:       dial,
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // a probe checks health, not identity
			DisableKeepAlives: true,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 10 || req.URL.Host != via[0].URL.Host {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
}

// Run holds the workers until ctx ends, then stops them all.
func (p *prober) Run(ctx context.Context) error {
	<-ctx.Done()
	p.cancel()
	return nil
}

// hasProbes reports whether c has any probe.
func hasProbes(c *skiffv1alpha1.Container) bool {
	return c.LivenessProbe != nil || c.ReadinessProbe != nil || c.StartupProbe != nil
}

// observe returns the verdict on the run of container id that started at
// startedAt, starting its worker on first sight. HTTP and TCP probes
// connect to ip from inside the Instance's network namespace, sb.netns. A
// nil prober, or a container without probes, is started and ready while
// it runs.
func (p *prober) observe(inst *skiffv1alpha1.Instance, c *skiffv1alpha1.Container, id string, sb sandbox, startedAt time.Time) probeVerdict {
	if p == nil || !hasProbes(c) {
		return probeVerdict{started: true, ready: true}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	w, ok := p.workers[id]
	if ok && !w.startedAt.Equal(startedAt) {
		w.stop()
		ok = false
	}
	if !ok {
		w = newProbeWorker(p, inst, c, id, sb, startedAt)
		p.workers[id] = w
		go w.run()
	}
	return w.verdict()
}

// forget stops the worker of container id (it stopped or went away).
func (p *prober) forget(id string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if w, ok := p.workers[id]; ok {
		w.stop()
		delete(p.workers, id)
	}
}

// probeWorker probes one run of one container.
type probeWorker struct {
	p         *prober
	inst      *skiffv1alpha1.Instance
	container *skiffv1alpha1.Container
	id, ip    string
	startedAt time.Time
	// dial connects inside the Instance's network namespace.
	dial func(ctx context.Context, netw, addr string) (net.Conn, error)
	http *http.Client
	ctx  context.Context
	stop context.CancelFunc

	mu sync.Mutex
	v  probeVerdict
}

func newProbeWorker(p *prober, inst *skiffv1alpha1.Instance, c *skiffv1alpha1.Container, id string, sb sandbox, startedAt time.Time) *probeWorker {
	ctx, cancel := context.WithCancel(p.ctx)
	dial := network.DialContext(sb.netns, &net.Dialer{})
	return &probeWorker{
		p: p, inst: inst.DeepCopy(), container: c.DeepCopy(), id: id, ip: sb.ip, startedAt: startedAt, ctx: ctx, stop: cancel,
		dial: dial, http: probeHTTPClient(dial),
		v: probeVerdict{started: c.StartupProbe == nil, ready: c.ReadinessProbe == nil},
	}
}

func (w *probeWorker) verdict() probeVerdict {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.v
}

// set changes the verdict and, when it changed, asks for a reconcile.
func (w *probeWorker) set(change func(v *probeVerdict)) {
	w.mu.Lock()
	before := w.v
	change(&w.v)
	after := w.v
	w.mu.Unlock()
	if before == after {
		return
	}
	ev := event.GenericEvent{Object: w.inst}
	select {
	case w.p.changed <- ev:
	case <-w.ctx.Done():
	}
}

// run is the worker: the startup probe, then liveness and readiness.
func (w *probeWorker) run() {
	c := w.container
	if c.StartupProbe != nil {
		ok, msg := w.loop(c.StartupProbe, "Startup", untilPass)
		if !ok {
			if msg != "" {
				w.unhealthy(fmt.Sprintf("Startup probe failed: %s", msg))
			}
			return
		}
		w.set(func(v *probeVerdict) { v.started = true })
	}
	var wg sync.WaitGroup
	if c.ReadinessProbe != nil {
		wg.Go(func() { w.loop(c.ReadinessProbe, "Readiness", forever) })
	}
	if c.LivenessProbe != nil {
		wg.Go(func() {
			if _, msg := w.loop(c.LivenessProbe, "Liveness", untilFail); msg != "" {
				w.unhealthy(fmt.Sprintf("Liveness probe failed: %s", msg))
			}
		})
	}
	wg.Wait()
}

// unhealthy concludes the container must be restarted, and says so in an
// Unhealthy Event.
func (w *probeWorker) unhealthy(msg string) {
	w.p.record(w.ctx, w.inst, "Unhealthy", fmt.Sprintf("container %q: %s; it will be restarted", w.container.Name, msg))
	w.set(func(v *probeVerdict) { v.unhealthy = msg; v.ready = false })
}

// probeMode is how a probe loop ends.
type probeMode int

const (
	// untilPass: a startup probe, done at its first success.
	untilPass probeMode = iota
	// untilFail: a liveness probe, done when it fails for good.
	untilFail
	// forever: a readiness probe, which sets ready as it goes.
	forever
)

// loop runs probe every period after its initial delay. It returns true
// when a startup probe passed; false with the last output when a startup
// or liveness probe failed failureThreshold times in a row; false and ""
// when stopped. A readiness probe runs until the worker stops, setting
// ready after successThreshold successes and clearing it after
// failureThreshold failures.
func (w *probeWorker) loop(probe *skiffv1alpha1.Probe, kind string, mode probeMode) (bool, string) {
	if !sleep(w.ctx, time.Duration(probe.InitialDelaySeconds)*time.Second) {
		return false, ""
	}
	threshold := int(max(probe.FailureThreshold, 1))
	successes, failures, told := 0, 0, ""
	for {
		ok, msg := w.once(probe)
		if w.ctx.Err() != nil {
			return false, ""
		}
		if ok {
			successes, failures = successes+1, 0
		} else {
			successes, failures = 0, failures+1
		}
		switch {
		case mode == untilPass && ok:
			return true, ""
		case mode != forever && failures >= threshold:
			return false, msg
		case mode == forever && ok:
			told = ""
			if successes >= int(max(probe.SuccessThreshold, 1)) {
				w.set(func(v *probeVerdict) { v.ready = true })
			}
		case mode == forever && failures >= threshold:
			// One Event per different failure, not one per period.
			if msg != told {
				w.p.record(w.ctx, w.inst, "Unhealthy", fmt.Sprintf("container %q: %s probe failed: %s", w.container.Name, kind, msg))
				told = msg
			}
			w.set(func(v *probeVerdict) { v.ready = false })
		}
		if !sleep(w.ctx, time.Duration(max(probe.PeriodSeconds, 1))*time.Second) {
			return false, ""
		}
	}
}

// once runs the probe one time within its timeout.
func (w *probeWorker) once(probe *skiffv1alpha1.Probe) (bool, string) {
	ctx, cancel := context.WithTimeout(w.ctx, time.Duration(max(probe.TimeoutSeconds, 1))*time.Second)
	defer cancel()
	switch {
	case probe.Exec != nil:
		return w.exec(ctx, probe.Exec)
	case probe.HTTPGet != nil:
		return w.httpGet(ctx, probe.HTTPGet)
	case probe.TCPSocket != nil:
		return w.tcp(ctx, probe.TCPSocket)
	}
	return false, "no handler"
}

// probeOutput caps what a probe's output adds to a message.
const probeOutput = 1024

func (w *probeWorker) exec(ctx context.Context, a *skiffv1alpha1.ExecAction) (bool, string) {
	if w.ctx.Err() != nil {
		return false, ""
	}
	return execAction(ctx, w.p.rt, w.id, a)
}

func (w *probeWorker) httpGet(ctx context.Context, a *skiffv1alpha1.HTTPGetAction) (bool, string) {
	return httpGetAction(ctx, w.http, a, w.container, w.host(a.Host))
}

// execAction runs a's command in container id: success is exit status 0;
// the message holds the command's first output.
func execAction(ctx context.Context, rt runtime.Runtime, id string, a *skiffv1alpha1.ExecAction) (bool, string) {
	var out bytes.Buffer
	lw := &limitedWriter{w: &out, n: probeOutput}
	code, err := rt.Exec(ctx, id, runtime.ExecOptions{Args: a.Command, Stdout: lw, Stderr: lw})
	switch {
	case ctx.Err() != nil:
		return false, fmt.Sprintf("command %q timed out", strings.Join(a.Command, " "))
	case err != nil:
		return false, err.Error()
	case code != 0:
		return false, fmt.Sprintf("command %q exited with %d: %s", strings.Join(a.Command, " "), code, strings.TrimSpace(out.String()))
	}
	return true, ""
}

// httpGetAction asks a's endpoint of container c at host with client: a
// status from 200 to 399 is success.
func httpGetAction(ctx context.Context, client *http.Client, a *skiffv1alpha1.HTTPGetAction, c *skiffv1alpha1.Container, host string) (bool, string) {
	port, err := probePort(a.Port, c)
	if err != nil {
		return false, err.Error()
	}
	scheme := "http"
	if a.Scheme == skiffv1alpha1.URISchemeHTTPS {
		scheme = "https"
	}
	url := scheme + "://" + net.JoinHostPort(host, strconv.Itoa(port)) + a.Path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err.Error()
	}
	req.Header.Set("User-Agent", "skiff-probe/1.0")
	for _, h := range a.HTTPHeaders {
		req.Header.Set(h.Name, h.Value)
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, probeOutput))
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return false, fmt.Sprintf("HTTP probe failed with statuscode: %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return true, ""
}

func (w *probeWorker) tcp(ctx context.Context, a *skiffv1alpha1.TCPSocketAction) (bool, string) {
	port, err := probePort(a.Port, w.container)
	if err != nil {
		return false, err.Error()
	}
	addr := net.JoinHostPort(w.host(a.Host), strconv.Itoa(port))
	conn, err := w.dial(ctx, "tcp", addr)
	if err != nil {
		return false, fmt.Sprintf("dial tcp %s: %v", addr, err)
	}
	conn.Close()
	return true, ""
}

// host is where HTTP and TCP probes connect: the probe's host, else the
// Instance's address.
func (w *probeWorker) host(h string) string {
	if h != "" {
		return h
	}
	if w.ip != "" {
		return w.ip
	}
	return "127.0.0.1"
}

// probePort resolves a port number or the name of one of c's ports.
func probePort(p intstr.IntOrString, c *skiffv1alpha1.Container) (int, error) {
	if p.Type == intstr.Int {
		return p.IntValue(), nil
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	return 0, fmt.Errorf("container %q has no port named %q", c.Name, p.StrVal)
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// limitedWriter keeps the first n bytes written to it.
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		if _, err := l.w.Write(p[:k]); err != nil {
			return 0, err
		}
		l.n -= k
	}
	return len(p), nil
}

// probed adds what the probes conclude to a running container's result:
// started and ready, and, when a liveness (or startup) probe gave up on
// it, a graceful kill, after which it restarts as its policy says.
func (r *instanceReconciler) probed(ctx context.Context, inst *skiffv1alpha1.Instance, c *skiffv1alpha1.Container, id string, sb sandbox, st runtime.Status, res containerResult) (containerResult, error) {
	v := r.prober.observe(inst, c, id, sb, st.StartedAt)
	res.status.Started = &v.started
	res.status.Ready = v.started && v.ready
	if v.unhealthy == "" {
		return res, nil
	}
	r.probeKills.add(id)
	wait, err := r.killUnhealthy(ctx, id, gracePeriod(inst), r.preStopHook(inst, c))
	if wait > 0 {
		res.retryAt = time.Now().Add(wait)
	}
	return res, err
}

// killUnhealthy stops a container its probes gave up on: its preStop
// hook, SIGTERM, then SIGKILL once the grace period is over. It returns
// how soon to look again.
func (r *instanceReconciler) killUnhealthy(ctx context.Context, id string, grace time.Duration, hook func(context.Context)) (time.Duration, error) {
	deadline, ok := r.terminating.deadline(id)
	if !ok {
		var err error
		if deadline, err = r.beginStop(ctx, id, grace, hook); err != nil {
			return 0, err
		}
	}
	if left := time.Until(deadline); left > 0 {
		return min(left, stopPoll), nil
	}
	if err := r.rt.Kill(ctx, id, syscall.SIGKILL); err != nil && !errors.Is(err, runtime.ErrBadState) {
		return 0, err
	}
	return stopPoll, nil
}

// idSet is a set of container ids, safe for concurrent use.
type idSet struct {
	mu  sync.Mutex
	ids map[string]bool
}

func (s *idSet) add(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ids == nil {
		s.ids = map[string]bool{}
	}
	s.ids[id] = true
}

func (s *idSet) has(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ids[id]
}

func (s *idSet) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.ids, id)
}
