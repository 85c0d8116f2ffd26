package apiserver

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"
)

// ResetMembership makes this server's etcd the only member of its
// cluster, keeping its data (`skiff server --cluster-reset`): for a
// cluster that lost its quorum, or before the other servers join it again.
// etcd starts once with --force-new-cluster and stops when it serves.
func ResetMembership(cfg Config) error {
	unlock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	defer unlock()
	dir := filepath.Join(cfg.DataDir, "etcd")
	m, err := loadEtcdMember(dir)
	if err != nil {
		return err
	}
	if m == nil {
		return errors.New("--cluster-reset: this server's etcd is its own, not a member of a cluster of servers: there is no membership to reset (restore a snapshot with --restore FILE)")
	}
	if !etcdDataExists(dir) {
		return fmt.Errorf("--cluster-reset: %s holds no etcd data yet", dir)
	}
	m.InitialCluster, m.Existing = m.Name+"="+m.PeerURL, false
	if err := m.save(dir); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e, err := startEmbeddedEtcd(ctx, dir, etcdOptions{member: m, forceNewCluster: true})
	if err != nil {
		return fmt.Errorf("--cluster-reset: %w", err)
	}
	e.Close()
	return nil
}

// RestoredMembership makes a clustered server's member file say that the
// etcd restored into dataDir starts a new cluster of one (a restore
// bootstraps its etcd anew); a server's own etcd is left as it is.
func RestoredMembership(dataDir string) error {
	dir := filepath.Join(dataDir, "etcd")
	m, err := loadEtcdMember(dir)
	if err != nil || m == nil {
		return err
	}
	m.InitialCluster, m.Existing = m.Name+"="+m.PeerURL, false
	return m.save(dir)
}
