package apiserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/server/v3/etcdserver"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/identity"
)

// Server is a configured, not yet running API server. Its listener is
// bound by New, so Addr and the kubeconfig are known before Run.
type Server struct {
	cfg      Config
	dir      dataDir
	listener net.Listener
	trust    *identity.Trust
	// adminCert, mcpCert and agentCert are the server's client
	// identities: the admin's and the MCP bridge's (with their
	// kubeconfigs), and the API server's own towards agents.
	adminCert, mcpCert, agentCert clientCert
	// joinToken is what node agents present to register their Node.
	joinToken identity.JoinToken
	// unlock releases the data directory's lock (when Run ends).
	unlock func()
	// gatherers and checks are other parts' metrics and health in the
	// same process, added before Run.
	gatherers prometheus.Gatherers
	checks    map[string]HealthCheck
	reports   map[string]HealthReport
	// handlers are other parts' endpoints (path -> handler).
	handlers map[string]http.Handler
	// member is the embedded etcd's membership of a cluster of servers
	// (nil: the server's own etcd); cluster serves the cluster endpoints.
	member  *etcdMember
	cluster *cluster
	// local reads the storage in process, once Run has built it.
	local *Local
	// serving is the handler chain while Run serves, for the clients in
	// process (InProcessAdminConfig).
	serving atomic.Pointer[http.Handler]
	// unrecorded serves the creates whose managed fields nothing keeps,
	// once the API is installed (unrecorded.go).
	unrecorded atomic.Pointer[unrecordedCreates]
}

// HealthReport is a HealthCheck that also tells what it saw (shown as the
// component's detail on /health).
type HealthReport func(ctx context.Context) (detail any, err error)

// AddHealthReport reports r as component name on /health. Call it before Run.
func (s *Server) AddHealthReport(name string, r HealthReport) {
	if s.reports == nil {
		s.reports = map[string]HealthReport{}
	}
	s.reports[name] = r
}

// AddHandler serves h at path (and below it) beside the API, behind the
// same authentication and authorization (nodes may GET gossip.APIPath; only
// admins reach anything else). Call it before Run.
func (s *Server) AddHandler(path string, h http.Handler) {
	if s.handlers == nil {
		s.handlers = map[string]http.Handler{}
	}
	s.handlers[path] = h
}

// HealthCheck reports whether a part is healthy; its error says why not.
type HealthCheck func(ctx context.Context) error

// AddMetrics serves g's metrics on /metrics too. Call it before Run.
func (s *Server) AddMetrics(g prometheus.Gatherer) { s.gatherers = append(s.gatherers, g) }

// AddHealth reports check as component name on /health. Call it before Run.
func (s *Server) AddHealth(name string, check HealthCheck) {
	if s.checks == nil {
		s.checks = map[string]HealthCheck{}
	}
	s.checks[name] = check
}

// New validates cfg, locks the data directory (ErrDataDirInUse while
// another process holds it: nothing is touched then), prepares it (first
// start creates the certificates, identities and join token), binds the
// listener and writes the admin kubeconfig. Run releases the lock when it
// ends.
func New(cfg Config) (*Server, error) { return NewContext(context.Background(), cfg) }

// NewContext is New, whose join of a cluster of servers (--join, the
// first start) ctx can cut short.
func NewContext(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	unlock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	s, err := newServer(ctx, cfg)
	if err != nil {
		unlock()
		return nil, err
	}
	s.unlock = unlock
	return s, nil
}

// newServer is New once the data directory is locked.
func newServer(ctx context.Context, cfg Config) (*Server, error) {
	host, _, _ := net.SplitHostPort(cfg.Listen)
	dir := dataDir{path: cfg.DataDir}
	if err := os.MkdirAll(dir.path, 0o700); err != nil {
		return nil, fmt.Errorf("data dir %q: %w", dir.path, err)
	}
	var member *etcdMember
	if len(cfg.EtcdServers) == 0 {
		// A joining server takes the cluster's keys before making any.
		var err error
		if member, err = prepareMembership(ctx, cfg, dir); err != nil {
			return nil, err
		}
	}
	if err := dir.ensure([]string{host}); err != nil {
		return nil, err
	}
	token, err := dir.joinToken()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, dir: dir, trust: identity.NewTrust(), joinToken: token, member: member, local: newLocal()}
	if len(cfg.EtcdServers) == 0 {
		s.cluster = &cluster{dir: dir, encryptionConfig: cfg.encryptionConfigPath()}
		s.AddHandler(ClusterPath, s.cluster)
	}
	for _, c := range []struct {
		into            *clientCert
		key, cert, user string
		groups          []string
		kubeconfig      string
	}{
		{&s.adminCert, adminKeyFile, adminCertFile, AdminUser, []string{"system:masters"}, s.KubeconfigPath()},
		{&s.mcpCert, mcpKeyFile, mcpCertFile, MCPUser, []string{MCPGroup}, s.MCPKubeconfigPath()},
		// Agents serve it only: it is trusted by the API server for nothing.
		{&s.agentCert, agentClientKeyFile, agentClientCertFile, skiffv1alpha1.APIServerUser, nil, ""},
	} {
		if *c.into, err = dir.loadClientCert(c.key, c.cert, c.user); err != nil {
			return nil, err
		}
		c.into.kubeconfig = c.kubeconfig
		if c.groups != nil {
			s.trust.Add(c.into.ID.Public(), identity.Principal{Name: c.user, Groups: c.groups})
		}
	}
	if s.listener, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("--listen %q: %w", cfg.Listen, err)
	}
	for _, c := range []*clientCert{&s.adminCert, &s.mcpCert} {
		c.server = s.URL()
		if err := dir.writeKubeconfig(*c); err != nil {
			s.listener.Close()
			return nil, err
		}
	}
	s.AddHandler(skiffv1alpha1.APIServerClientKeyPath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, s.agentCert.ID.PublicKeyString())
	}))
	return s, nil
}

// Addr is the bound address, host:port.
func (s *Server) Addr() string { return s.listener.Addr().String() }

// URL is the HTTPS URL clients use; a wildcard listen address becomes loopback.
func (s *Server) URL() string {
	addr := s.listener.Addr().(*net.TCPAddr)
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "https://" + net.JoinHostPort(host, strconv.Itoa(addr.Port))
}

// AdvertisedURL is the URL other machines reach this server at: URL(),
// with --advertise-address as its host when given.
func (s *Server) AdvertisedURL() string {
	if s.cfg.AdvertiseAddress == "" {
		return s.URL()
	}
	return "https://" + net.JoinHostPort(s.cfg.AdvertiseAddress, strconv.Itoa(s.listener.Addr().(*net.TCPAddr).Port))
}

// Clustered tells whether the server's embedded etcd is a member of a
// cluster of servers (--cluster-init, --join, or either before).
func (s *Server) Clustered() bool { return s.member != nil }

// MCPKubeconfigPath is the MCP bridge's kubeconfig in the data directory.
func (s *Server) MCPKubeconfigPath() string { return s.dir.file(MCPKubeconfigFile) }

// KubeconfigPath is the admin kubeconfig in the data directory.
func (s *Server) KubeconfigPath() string { return s.dir.file(AdminKubeconfigFile) }

// AdminConfig is an admin's client configuration for the parts that run
// in the server's process (the controllers): unlike the kubeconfig's, its
// certificate is re-read from the file the server renews.
func (s *Server) AdminConfig() (*rest.Config, error) { return s.dir.restConfig(s.adminCert) }

// renewClientCerts renews the server's client certificates when due, and
// rewrites the kubeconfigs that embed them, until ctx ends.
func (s *Server) renewClientCerts(ctx context.Context) {
	var wg sync.WaitGroup
	for _, c := range []clientCert{s.adminCert, s.mcpCert, s.agentCert} {
		wg.Go(func() {
			_ = c.Run(ctx, func() {
				if c.kubeconfig == "" {
					return
				}
				if err := s.dir.writeKubeconfig(c); err != nil {
					klog.ErrorS(err, "rewriting a kubeconfig after renewing its certificate", "path", c.kubeconfig)
				}
			})
		})
	}
	wg.Wait()
}

// Run starts storage and serves until ctx ends. Shutdown order: stop
// accepting requests and drain them, then stop etcd. Requests still in
// flight after the drain (a server whose etcd lost its quorum would wait
// out each one's timeout) fail: etcd stops under them, and Run returns
// even if the library has not finished.
func (s *Server) Run(ctx context.Context) error {
	defer s.unlock()
	defer s.listener.Close()
	endpoints := s.cfg.EtcdServers
	var etcdErr <-chan error
	var etcdStopped <-chan struct{}
	stopEtcd, leaderless := func() {}, func() bool { return false }
	var local *etcdserver.EtcdServer
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if len(endpoints) == 0 {
		etcd, err := s.startEtcd(ctx)
		if err != nil {
			return err
		}
		defer etcd.Close()
		stopEtcd = etcd.Close
		leaderless = func() bool { return etcd.etcd.Server.Leader() == 0 }
		endpoints = []string{etcd.Endpoint}
		local = etcd.etcd.Server
		etcdErr, etcdStopped = etcd.Err(), etcd.Stopped()
		if s.member != nil {
			go s.cluster.promoteLearners(runCtx)
		}
	}
	generic, closeExtras, err := s.build(endpoints, local)
	if err != nil {
		return err
	}
	defer closeExtras()

	go s.renewClientCerts(runCtx)
	done := make(chan error, 1)
	prepared := generic.PrepareRun()
	var handler http.Handler = generic.Handler
	s.serving.Store(&handler)
	defer s.serving.Store(nil)
	go func() { done <- prepared.RunWithContext(runCtx) }()
	select {
	case err := <-done:
		return err
	case err := <-etcdErr:
		cancel()
		<-done
		return fmt.Errorf("embedded etcd: %w", err)
	case <-etcdStopped:
		cancel()
		<-done
		return stoppedOnItsOwn(s.dir.file("etcd"))
	case <-ctx.Done():
		drain := shutdownDrain + 5*time.Second
		if leaderless() {
			// No request that needs etcd can finish: none is waited for.
			drain = 0
		}
		select {
		case err := <-done:
			return err
		case <-time.After(drain):
			klog.InfoS("requests are still in flight after the drain: stopping etcd under them")
			stopEtcd()
			select {
			case err := <-done:
				return err
			case <-time.After(2 * time.Second):
				// The process ends; what is left of the server with it.
				return nil
			}
		}
	}
}

// startEtcd starts the embedded etcd; a member of a cluster of servers
// waits until it votes, and makes sure the cluster has its peer URL.
func (s *Server) startEtcd(ctx context.Context) (*embeddedEtcd, error) {
	dir := s.dir.file("etcd")
	if s.member != nil {
		klog.InfoS("starting etcd as a member of a cluster of servers", "name", s.member.Name, "peerURL", s.member.PeerURL)
	}
	etcd, err := startEmbeddedEtcd(ctx, dir, etcdOptions{member: s.member})
	if err != nil || s.member == nil {
		return etcd, err
	}
	if err := waitPromoted(ctx, etcd, dir); err != nil {
		etcd.Close()
		return nil, err
	}
	// A member removed while it was away learns it now: etcd stops.
	updateCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	go func() {
		select {
		case <-etcd.Stopped():
			cancel()
		case <-updateCtx.Done():
		}
	}()
	if err := updatePeerURL(updateCtx, etcd); err != nil {
		select {
		case <-etcd.Stopped():
			err = stoppedOnItsOwn(dir)
		default:
		}
		etcd.Close()
		return nil, err
	}
	s.cluster.etcd.Store(etcd)
	return etcd, nil
}

// poll calls check every 50ms until it succeeds or ctx ends.
func poll(ctx context.Context, check func() error) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-t.C:
		}
	}
}

var _ = genericapiserver.NewEmptyDelegate
