package apiserver

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
)

// embeddedEtcd is etcd inside the server process. Its client endpoint is
// a unix socket in a 0700 directory: nothing but this process (and root)
// can reach the data. A server's own etcd has its peer endpoint there
// too; a member of a cluster of servers (etcdOptions.member) listens for
// its peers on TCP with mutual TLS, accepting only certificates of the
// cluster's peer CA.
type embeddedEtcd struct {
	etcd *embed.Etcd
	// member is the cluster membership, nil for a server's own etcd.
	member *etcdMember
	// Endpoint is the client URL for the apiserver's storage.
	Endpoint string
	// closing quiets etcd's logger for a stop on purpose.
	closing   *atomic.Bool
	closeOnce sync.Once
	// v3 is the in-process client of this member (client), made once.
	v3     *clientv3.Client
	v3Once sync.Once
}

// client is an in-process client of this etcd, made at the first call
// and closed with it: cluster membership requests and the learner
// promoter share it.
func (e *embeddedEtcd) client() *clientv3.Client {
	e.v3Once.Do(func() { e.v3 = v3client.New(e.etcd.Server) })
	return e.v3
}

// ownSnapshotCount and ownCatchUpEntries bound the raft log a server's
// own etcd keeps in memory: a snapshot (membership only: the data is in
// bbolt) every 1,000 writes, and 100 entries kept after it.
const (
	ownSnapshotCount  = 1000
	ownCatchUpEntries = 100
)

// maxSocketPath is the longest unix socket path Linux accepts (sun_path
// is 108 bytes including the terminating NUL).
const maxSocketPath = 107

// etcdOptions say how the embedded etcd starts.
type etcdOptions struct {
	// member, when set, makes etcd a member of a cluster of servers.
	member *etcdMember
	// forceNewCluster makes the member the only one of its cluster,
	// keeping the data (--cluster-reset without a snapshot).
	forceNewCluster bool
}

// startEmbeddedEtcd starts etcd in dir and waits until it serves or the
// context ends.
func startEmbeddedEtcd(ctx context.Context, dir string, opts etcdOptions) (*embeddedEtcd, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("etcd dir %q: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("etcd dir %q: %w", dir, err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	client := &url.URL{Scheme: "unix", Path: filepath.Join(abs, "client.sock")}
	if len(client.Path) > maxSocketPath {
		return nil, fmt.Errorf("--data-dir %q is too long: the etcd socket path %q is %d bytes, unix sockets allow %d",
			dir, client.Path, len(client.Path), maxSocketPath)
	}
	peer := &url.URL{Scheme: "unix", Path: filepath.Join(abs, "peer.sock")}
	for _, u := range []*url.URL{client, peer} {
		// A socket left by a crashed process blocks the listen.
		_ = os.Remove(u.Path)
	}
	cfg := embed.NewConfig()
	cfg.Name = "skiff"
	cfg.Dir = filepath.Join(abs, "data")
	cfg.ListenClientUrls = []url.URL{*client}
	cfg.AdvertiseClientUrls = []url.URL{*client}
	cfg.ListenPeerUrls = []url.URL{*peer}
	cfg.AdvertisePeerUrls = []url.URL{*peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	if m := opts.member; m != nil {
		if err := clusterPeers(cfg, abs, m); err != nil {
			return nil, err
		}
	}
	if opts.member == nil {
		// A server's own etcd has no follower to catch up: it keeps
		// a short raft log in memory (etcd keeps 5,000 entries after
		// each snapshot, taken every 10,000, for slow followers:
		// about 12 MB through a burst of writes).
		cfg.SnapshotCount, cfg.SnapshotCatchUpEntries = ownSnapshotCount, ownCatchUpEntries
	}
	cfg.ForceNewCluster = opts.forceNewCluster
	cfg.LogLevel = "error"
	closing := &atomic.Bool{}
	lg, err := etcdLogger(closing)
	if err != nil {
		return nil, fmt.Errorf("etcd logger: %w", err)
	}
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(lg)
	// The apiserver compacts; etcd's own periodic compaction stays off.
	cfg.AutoCompactionRetention = "0"

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd in %q: %w", dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		// A removed member's etcd stops itself; its listeners' errors
		// ("server is stopping") come first.
		select {
		case <-e.Server.StopNotify():
			err = stoppedOnItsOwn(dir)
		case <-time.After(2 * time.Second):
		}
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %q: %w", dir, err)
	case <-e.Server.StopNotify():
		e.Close()
		return nil, stoppedOnItsOwn(dir)
	case <-readyTimeout(opts):
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %q: not ready after 60s", dir)
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	}
	if err := os.Chmod(client.Path, 0o600); err != nil {
		e.Close()
		return nil, fmt.Errorf("etcd socket: %w", err)
	}
	return &embeddedEtcd{etcd: e, member: opts.member, Endpoint: client.String(), closing: closing}, nil
}

// readyTimeout bounds the wait for a server's own etcd to serve. A member
// of a cluster of servers waits as long as it takes: after a whole
// cluster stopped, it serves only once enough others are back.
func readyTimeout(opts etcdOptions) <-chan time.Time {
	if opts.member != nil {
		return nil
	}
	return time.After(60 * time.Second)
}

// clusterPeers makes cfg a member of a cluster of servers: peers on TCP
// with mutual TLS.
func clusterPeers(cfg *embed.Config, dir string, m *etcdMember) error {
	u, err := url.Parse(m.PeerURL)
	if err != nil {
		return fmt.Errorf("etcd peer URL %q: %w", m.PeerURL, err)
	}
	if err := ensurePeerCert(dir, m.Name, u.Hostname()); err != nil {
		return err
	}
	cfg.Name = m.Name
	cfg.ListenPeerUrls = []url.URL{*u}
	cfg.AdvertisePeerUrls = []url.URL{*u}
	cfg.InitialCluster = m.InitialCluster
	if m.ClusterToken != "" {
		cfg.InitialClusterToken = m.ClusterToken
	}
	cfg.ClusterState = embed.ClusterStateFlagNew
	if m.Existing {
		cfg.ClusterState = embed.ClusterStateFlagExisting
	}
	cfg.PeerTLSInfo = transport.TLSInfo{
		CertFile:       filepath.Join(dir, peerCertFile),
		KeyFile:        filepath.Join(dir, peerKeyFile),
		TrustedCAFile:  filepath.Join(dir, peerCACertFile),
		ClientCertAuth: true,
	}
	return nil
}

// stoppedOnItsOwn is why etcd stopped without being asked: most often,
// its member was removed from the cluster.
func stoppedOnItsOwn(dir string) error {
	return fmt.Errorf("etcd stopped on its own: most likely this server was removed from its cluster "+
		"(skiff server remove), and a removed server cannot come back with its old data: "+
		"move %s aside and start it again with --join and a server token", dir)
}

// Stopped is closed when etcd stops, asked to or not.
func (e *embeddedEtcd) Stopped() <-chan struct{} { return e.etcd.Server.StopNotify() }

// Err reports a fatal etcd error; the server stops on it.
func (e *embeddedEtcd) Err() <-chan error { return e.etcd.Err() }

// Close stops etcd; it is safe to call more than once. A stop on purpose
// logs nothing.
func (e *embeddedEtcd) Close() {
	e.closeOnce.Do(func() {
		if e.closing != nil {
			e.closing.Store(true)
		}
		e.v3Once.Do(func() {}) // no client made after this
		if e.v3 != nil {
			_ = e.v3.Close()
		}
		e.etcd.Close()
	})
}

// etcdTLS is the client TLS for external etcd, nil without TLS flags.
func etcdTLS(cfg Config) (*tls.Config, error) {
	if cfg.EtcdCAFile == "" && cfg.EtcdCertFile == "" {
		return nil, nil
	}
	info := transport.TLSInfo{CertFile: cfg.EtcdCertFile, KeyFile: cfg.EtcdKeyFile, TrustedCAFile: cfg.EtcdCAFile}
	c, err := info.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("--etcd-cafile/--etcd-certfile/--etcd-keyfile: %w", err)
	}
	return c, nil
}
