package apiserver

import (
	"crypto/tls"

	"context"
	"fmt"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// embeddedEtcd is a single-member etcd inside the server process. Its
// client and peer endpoints are unix sockets in a 0700 directory: nothing
// but this process (and root) can reach the data.
type embeddedEtcd struct {
	etcd *embed.Etcd
	// Endpoint is the client URL for the apiserver's storage.
	Endpoint string
	// closing quiets etcd's logger for a stop on purpose.
	closing *atomic.Bool
}

// maxSocketPath is the longest unix socket path Linux accepts (sun_path
// is 108 bytes including the terminating NUL).
const maxSocketPath = 107

// startEmbeddedEtcd starts etcd in dir and waits until it serves or the
// context ends.
func startEmbeddedEtcd(ctx context.Context, dir string) (*embeddedEtcd, error) {
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
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %q: %w", dir, err)
	case <-time.After(60 * time.Second):
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
	return &embeddedEtcd{etcd: e, Endpoint: client.String(), closing: closing}, nil
}

// Err reports a fatal etcd error; the server stops on it.
func (e *embeddedEtcd) Err() <-chan error { return e.etcd.Err() }

// Close stops etcd; it is safe to call more than once. A stop on purpose
// logs nothing.
func (e *embeddedEtcd) Close() {
	if e.closing != nil {
		e.closing.Store(true)
	}
	e.etcd.Close()
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
