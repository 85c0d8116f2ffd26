package nodeagent

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/apiserver/pkg/util/flushwriter"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/identity"
	"skiff.dev/skiff/nodeagent/logs"
	"skiff.dev/skiff/nodeagent/runtime"
)

// server is the agent's HTTPS endpoint: container logs, exec and /metrics
// for the apiserver only (it must present a certificate of the client key it
// told the agent when it joined; people read them through it), and open
// /healthz and /health.
type server struct {
	rt        runtime.Runtime
	instances client.Reader
	logDir    string
	// apiserverKey is the API server's client key towards agents.
	apiserverKey ed25519.PublicKey
	metrics      *metrics
}

func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /containerLogs/{namespace}/{instance}", s.containerLogs)
	mux.HandleFunc("POST /exec/{namespace}/{instance}/{uid}/{container}", s.execInContainer)
	metrics := promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		if !s.fromAPIServer(r) {
			http.Error(w, "only the apiserver may read the agent's metrics: GET /apis/skiff.dev/v1alpha1/nodes/NAME/metrics from it", http.StatusForbidden)
			return
		}
		metrics.ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /health", s.health)
	return mux
}

// serve serves on ln with the agent's certificate (read from its file at
// each handshake, so that renewals take effect) until ctx ends.
func (s *server) serve(ctx context.Context, ln net.Listener, cert identity.CertFile) error {
	srv := &http.Server{
		Handler:           s.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{
			GetCertificate: cert.GetCertificate,
			ClientAuth:     tls.RequestClientCert, // checked per route
			MinVersion:     tls.VersionTLS12,
		},
	}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("agent server: %w", err)
	}
	return nil
}

// fromAPIServer reports whether the request comes from the apiserver: a
// valid certificate self-signed by its client key.
func (s *server) fromAPIServer(r *http.Request) bool {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return false
	}
	pub, err := identity.VerifySelfSigned(r.TLS.PeerCertificates[0], time.Now())
	return err == nil && pub.Equal(s.apiserverKey)
}

func (s *server) containerLogs(w http.ResponseWriter, r *http.Request) {
	if !s.fromAPIServer(r) {
		http.Error(w, "only the apiserver may read logs", http.StatusForbidden)
		return
	}
	var opts skiffv1alpha1.InstanceLogOptions
	if err := skiffv1alpha1.InstanceLogOptionsFromQuery(r.URL.Query(), &opts); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var inst skiffv1alpha1.Instance
	key := client.ObjectKey{Namespace: r.PathValue("namespace"), Name: r.PathValue("instance")}
	if err := s.instances.Get(r.Context(), key, &inst); err != nil {
		http.Error(w, fmt.Sprintf("instance %s: %v", key, err), http.StatusNotFound)
		return
	}
	id := containerID(&inst, opts.Container)
	path := logPath(s.logDir, id)
	if opts.Previous {
		path = previousLogPath(s.logDir, id)
	}
	if _, err := os.Stat(path); err != nil {
		what := "has not logged yet"
		if opts.Previous {
			what = "has no previous run"
		}
		http.Error(w, fmt.Sprintf("container %q of instance %s %s", opts.Container, key, what), http.StatusNotFound)
		return
	}
	lo := logs.Options{Follow: opts.Follow && !opts.Previous, TailLines: -1, Timestamps: opts.Timestamps}
	if opts.TailLines != nil {
		lo.TailLines = *opts.TailLines
	}
	if opts.LimitBytes != nil {
		lo.LimitBytes = *opts.LimitBytes
	}
	switch {
	case opts.SinceTime != nil:
		lo.Since = opts.SinceTime.Time
	case opts.SinceSeconds != nil:
		lo.Since = time.Now().Add(-time.Duration(*opts.SinceSeconds) * time.Second)
	}
	running := func() bool {
		st, err := s.rt.State(r.Context(), id)
		return err == nil && st.State != runtime.Stopped
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	out := io.Writer(w)
	if lo.Follow { // lines reach the reader as they are written
		out = flushwriter.Wrap(w)
	}
	if err := logs.Read(r.Context(), path, lo, out, running); err != nil && r.Context().Err() == nil {
		klog.ErrorS(err, "serve log", "instance", key, "container", opts.Container)
	}
}

// check asks the runtime for its version, the cheapest call that proves
// it answers.
func (s *server) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := s.rt.Version(ctx)
	return err
}

func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	if err := s.check(r.Context()); err != nil {
		http.Error(w, "runtime: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

// health is the seed's JSON health: overall status and each component's.
func (s *server) health(w http.ResponseWriter, r *http.Request) {
	type component struct {
		Status  string `json:"status"`
		Name    string `json:"name,omitempty"`
		Message string `json:"message,omitempty"`
	}
	rt := component{Status: "healthy", Name: s.rt.Name()}
	code := http.StatusOK
	if err := s.check(r.Context()); err != nil {
		rt.Status, rt.Message, code = "unhealthy", err.Error(), http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"status":     rt.Status,
		"components": map[string]component{"runtime": rt},
	})
}

// endpoint is the address the apiserver reaches ln at: the listener's own
// address, or the node's address when it listens on every interface.
func endpoint(ln net.Listener, hostIP string) string {
	addr := ln.Addr().(*net.TCPAddr)
	host := addr.IP.String()
	if addr.IP.IsUnspecified() && hostIP != "" {
		host = hostIP
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), fmt.Sprint(addr.Port))
}
