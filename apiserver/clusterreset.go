package apiserver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"skiff.dev/skiff/identity"
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

// RestoreMember is the etcd member a snapshot restored into dataDir
// starts as: a clustered server's own (its member file), or none ("") for
// a server's own etcd.
func RestoreMember(dataDir string) (name, peerURL string, err error) {
	m, err := loadEtcdMember(filepath.Join(dataDir, "etcd"))
	if err != nil || m == nil {
		return "", "", err
	}
	return m.Name, m.PeerURL, nil
}

// RestoredMembership keeps a clustered server clustered after a restore
// replaced its etcd directory (the old one moved to previous): the member
// file, now saying the member starts a new cluster of one, and the peer
// certificates go into the new directory. A server's own etcd has none.
func RestoredMembership(dataDir, previous string) error {
	if previous == "" {
		return nil
	}
	m, err := loadEtcdMember(previous)
	if err != nil || m == nil {
		return err
	}
	dir := filepath.Join(dataDir, "etcd")
	for _, name := range []string{peerCACertFile, peerCAKeyFile, peerCertFile, peerKeyFile} {
		data, err := os.ReadFile(filepath.Join(previous, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return err
		}
		if err := identity.WriteFileAtomic(filepath.Join(dir, name), data, 0o600); err != nil {
			return err
		}
	}
	m.InitialCluster, m.Existing = m.Name+"="+m.PeerURL, false
	return m.save(dir)
}
