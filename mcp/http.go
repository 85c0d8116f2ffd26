package mcp

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/utils/lru"

	"skiff.dev/skiff/identity"
)

// HTTPConfig configures the streamable HTTP transport of `skiff mcp --http`.
type HTTPConfig struct {
	// Listen is host:port (--http); port 0 picks a free port.
	Listen string
	// CertFile and KeyFile are the serving certificate (--tls-cert-file,
	// --tls-key-file); a self-signed one is made when they do not exist.
	CertFile, KeyFile string
	// Stateless keeps no sessions (--stateless): see Config.Stateless.
	Stateless bool
}

// sessionIdle closes a stateful session nobody used for this long.
const sessionIdle = 30 * time.Minute

// MCPPath is where the MCP endpoint is served.
const MCPPath = "/mcp"

// HTTPServer serves a Bridge over streamable HTTP and TLS. Every call to
// /mcp needs a self-signed Ed25519 client certificate (as kubectl's) and
// runs as that certificate's key; /healthz and /metrics answer anyone.
type HTTPServer struct {
	cfg      HTTPConfig
	bridge   *Bridge
	listener net.Listener
	server   *http.Server
	sessions *sessionOwners
	now      func() time.Time
}

// NewHTTPServer makes the serving certificate if needed and binds Listen.
func NewHTTPServer(cfg HTTPConfig, b *Bridge, gatherer prometheus.Gatherer) (*HTTPServer, error) {
	host, _, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("--http %q: %w", cfg.Listen, err)
	}
	if err := identity.EnsureServingCert(cfg.CertFile, cfg.KeyFile, "skiff-mcp", []string{host}); err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert-file %s: %w", cfg.CertFile, err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("--http %q: %w", cfg.Listen, err)
	}
	s := &HTTPServer{cfg: cfg, bridge: b, listener: ln, sessions: newSessionOwners(), now: time.Now}
	mcpHandler := sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return b.Server() },
		&sdk.StreamableHTTPOptions{Stateless: cfg.Stateless, SessionTimeout: sessionIdle})
	mux := http.NewServeMux()
	mux.Handle(MCPPath, s.authenticate(mcpHandler))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	if gatherer != nil {
		mux.Handle("/metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	}
	s.server = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		// Clients present self-signed certificates: no chain to verify,
		// the signature and the key are checked per request.
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequestClientCert, MinVersion: tls.VersionTLS12},
	}
	return s, nil
}

// URL is the MCP endpoint's URL.
func (s *HTTPServer) URL() string {
	addr := s.listener.Addr().(*net.TCPAddr)
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "https://" + net.JoinHostPort(host, fmt.Sprint(addr.Port)) + MCPPath
}

// Run serves until ctx ends, then shuts down, letting calls in flight finish.
func (s *HTTPServer) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.server.ServeTLS(s.listener, "", "") }()
	select {
	case err := <-errc:
		return fmt.Errorf("mcp http: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.server.Shutdown(shutdown)
	if errors.Is(err, context.DeadlineExceeded) {
		// Event streams stay open until their clients go: close them.
		err = s.server.Close()
	}
	if serveErr := <-errc; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	return err
}

// authenticate lets through only requests with a valid self-signed client
// certificate, and tells the handlers whose it is (the context for
// stateless calls, a header it sets itself for stateful sessions, whose
// handlers see the first request's context). A session is its creator's:
// another key may not use its id.
func (s *HTTPServer) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Del(callerHeader)
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "skiff mcp: a client certificate is required (a self-signed Ed25519 certificate, as in a skiff kubeconfig)", http.StatusUnauthorized)
			return
		}
		key, err := identity.VerifySelfSigned(r.TLS.PeerCertificates[0], s.now())
		if err != nil {
			http.Error(w, "skiff mcp: client certificate: "+err.Error(), http.StatusUnauthorized)
			return
		}
		if id := r.Header.Get("Mcp-Session-Id"); id != "" && !s.sessions.owns(id, key) {
			http.Error(w, "skiff mcp: this session belongs to another caller", http.StatusForbidden)
			return
		}
		r.Header.Set(callerHeader, identity.EncodePublicKey(key))
		r = r.WithContext(WithCaller(r.Context(), key))
		next.ServeHTTP(&sessionRecorder{ResponseWriter: w, sessions: s.sessions, key: key, deleting: r.Method == http.MethodDelete, request: r.Header.Get("Mcp-Session-Id")}, r)
	})
}

// sessionOwners remembers which key opened each stateful session.
type sessionOwners struct {
	mu    sync.Mutex
	owner *lru.Cache
}

// maxSessions bounds the sessions remembered; the oldest are forgotten
// (and so cannot be used any more by anyone).
const maxSessions = 10000

func newSessionOwners() *sessionOwners { return &sessionOwners{owner: lru.New(maxSessions)} }

// owns reports whether key opened session id.
func (o *sessionOwners) owns(id string, key ed25519.PublicKey) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	v, ok := o.owner.Get(id)
	return ok && v.(string) == string(key)
}

func (o *sessionOwners) set(id string, key ed25519.PublicKey) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.owner.Get(id); !ok {
		o.owner.Add(id, string(key))
	}
}

func (o *sessionOwners) forget(id string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.owner.Remove(id)
}

// sessionRecorder notes the session id the SDK gives a new session, as
// its response headers are written.
type sessionRecorder struct {
	http.ResponseWriter
	sessions *sessionOwners
	key      ed25519.PublicKey
	request  string
	deleting bool
	wrote    bool
}

func (r *sessionRecorder) WriteHeader(code int) {
	if r.wrote {
		return
	}
	r.wrote = true
	if id := r.Header().Get("Mcp-Session-Id"); id != "" && r.request == "" && code < 300 {
		r.sessions.set(id, r.key)
	}
	if r.deleting && r.request != "" && code < 300 {
		r.sessions.forget(r.request)
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *sessionRecorder) Write(p []byte) (int, error) {
	if !r.wrote {
		r.WriteHeader(http.StatusOK)
	}
	return r.ResponseWriter.Write(p)
}

// Flush lets server-sent events through.
func (r *sessionRecorder) Flush() {
	if !r.wrote {
		r.WriteHeader(http.StatusOK)
	}
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (r *sessionRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
