package etcdsnapshot

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.etcd.io/etcd/server/v3/storage/mvcc"
	"go.etcd.io/etcd/server/v3/storage/schema"
	"go.uber.org/zap"

	"skiff.dev/skiff/internal/datadirlock"
)

// RevisionBump is how far a restore moves etcd's revision past the
// snapshot's (and past the replaced database's, when it can be read), as
// `etcdutl snapshot restore --bump-revision 1000000000 --mark-compacted`
// does for Kubernetes: every resourceVersion a client saw before is then
// older than the restored store's history, which is marked compacted, so
// watches and informers get 410 Gone and list again instead of missing
// the changes the restore undid.
const RevisionBump = 1_000_000_000

// RestoreOptions says what to restore where.
type RestoreOptions struct {
	// File is the snapshot file.
	File string
	// DataDir is the server's data directory; its etcd is replaced.
	DataDir string
	// EncryptionConfig is where the encryption configuration goes; empty
	// is <DataDir>/encryption-config.yaml.
	EncryptionConfig string
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// MemberName and MemberPeerURL are the etcd member the restored etcd
	// starts as, alone in a new cluster; empty: a server's own etcd
	// ("skiff", its peer socket in <DataDir>/etcd).
	MemberName, MemberPeerURL string
}

// StandaloneMember is the name of the etcd member of a server's own etcd.
const StandaloneMember = "skiff"

// RestoreReport is what a restore did.
type RestoreReport struct {
	Manifest Manifest
	// EtcdDir is the restored etcd directory; Previous is where the etcd
	// directory it replaced was moved ("" if there was none).
	EtcdDir, Previous string
	// Revision is the restored etcd's revision after the bump.
	Revision int64
	// EncryptionConfig is where the snapshot's encryption configuration
	// was written; EncryptionBackup keeps the file it replaced ("" if it
	// was missing or the same).
	EncryptionConfig, EncryptionBackup string
	// Written are the state files the data directory lacked, written from
	// the snapshot; Kept the ones present and different, left as they were.
	Written, Kept []string
}

// Restore replaces the etcd of the data directory with the snapshot's,
// made a new single-member cluster of this server at a bumped revision,
// and puts back the snapshot's encryption configuration and the state
// files the data directory lacks. Nothing is touched unless the whole file
// checks out against its manifest and the data directory is not in use.
// The server starts from it afterwards.
func Restore(opts RestoreOptions) (RestoreReport, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	if _, err := os.Stat(opts.File); err != nil {
		return RestoreReport{}, fmt.Errorf("snapshot: %w", err)
	}
	encPath := opts.EncryptionConfig
	if encPath == "" {
		encPath = filepath.Join(opts.DataDir, encryptionConfigPath)
	}
	unlock, err := lockDataDir(opts.DataDir)
	if err != nil {
		return RestoreReport{}, err
	}
	defer unlock()

	stamp := strconv.FormatInt(now().Unix(), 10)
	r, v, err := replaceEtcd(opts, encPath, stamp)
	if err != nil {
		return r, err
	}
	// The Secrets in the restored database need the snapshot's keys.
	if err := restoreEncryption(&r, v.State[encryptionConfigPath], encPath, stamp); err != nil {
		return r, err
	}
	if err := restoreStateFiles(&r, opts.DataDir, v.State); err != nil {
		return r, err
	}
	return r, nil
}

// replaceEtcd prepares the snapshot's database in a staging directory
// beside the data directory's etcd (removed unless it is put in place),
// moves the current etcd aside and the staged one into its place. Its
// report is empty unless the restored etcd is in place.
func replaceEtcd(opts RestoreOptions, encPath, stamp string) (RestoreReport, verified, error) {
	staging := filepath.Join(opts.DataDir, "etcd.restoring-"+stamp)
	if err := os.RemoveAll(staging); err != nil {
		return RestoreReport{}, verified{}, err
	}
	if err := os.MkdirAll(staging, 0o700); err != nil {
		return RestoreReport{}, verified{}, err
	}
	committed := false
	defer func() {
		if !committed {
			os.RemoveAll(staging)
		}
	}()
	etcdDir := filepath.Join(opts.DataDir, "etcd")
	v, rev, err := stageDB(opts.File, filepath.Join(staging, "snapshot.db"), etcdDir)
	if err != nil {
		return RestoreReport{}, verified{}, err
	}
	if err := bootstrapMember(opts, filepath.Join(staging, "snapshot.db"), filepath.Join(staging, "data"), etcdDir); err != nil {
		return RestoreReport{}, verified{}, fmt.Errorf("%s: %w", opts.File, err)
	}
	if err := os.Chmod(staging, 0o700); err != nil {
		return RestoreReport{}, verified{}, err
	}
	r := RestoreReport{Manifest: v.Manifest, EtcdDir: etcdDir, Revision: rev, EncryptionConfig: encPath}
	if _, err := os.Lstat(etcdDir); err == nil {
		r.Previous = filepath.Join(opts.DataDir, "etcd.before-restore-"+stamp)
		if err := os.Rename(etcdDir, r.Previous); err != nil {
			return RestoreReport{}, verified{}, fmt.Errorf("moving the current etcd aside: %w", err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return RestoreReport{}, verified{}, err
	}
	if err := os.Rename(staging, etcdDir); err != nil {
		return RestoreReport{}, verified{}, fmt.Errorf("putting the restored etcd in place (the previous one is in %s): %w", r.Previous, err)
	}
	committed = true
	if err := syncDir(opts.DataDir); err != nil {
		return r, v, err
	}
	return r, v, nil
}

// stageDB extracts the snapshot file's database to db, checks that the
// snapshot holds an encryption configuration, and prepares the database
// to start past the revision of the one in etcdDir it replaces. It
// returns the verified snapshot and the restored revision.
func stageDB(file, db, etcdDir string) (verified, int64, error) {
	v, err := extract(file, db)
	if err != nil {
		return verified{}, 0, err
	}
	if _, ok := v.State[encryptionConfigPath]; !ok {
		return verified{}, 0, fmt.Errorf("%s: %w: it holds no encryption configuration", file, ErrCorrupt)
	}
	replaced := currentRevision(filepath.Join(etcdDir, "data", "member", "snap", "db"))
	rev, err := prepareDB(db, replaced)
	if err != nil {
		return verified{}, 0, fmt.Errorf("%s: %w", file, err)
	}
	return v, rev, nil
}

// bootstrapMember makes dataDir the etcd data of the member opts names,
// alone in a new cluster, starting from the prepared database db: etcd's
// own restore (etcdutl's) writes the database, a write-ahead log and a
// raft snapshot at its start. The raft snapshot matters once other
// servers join: the leader's log then begins after it, so a joining
// member receives the whole database rather than a log that lacks it.
func bootstrapMember(opts RestoreOptions, db, dataDir, etcdDir string) error {
	name, peer := opts.MemberName, opts.MemberPeerURL
	if name == "" {
		abs, err := filepath.Abs(etcdDir)
		if err != nil {
			return err
		}
		name, peer = StandaloneMember, "unix://"+filepath.Join(abs, "peer.sock")
	}
	err := snapshot.NewV3(zap.NewNop()).Restore(snapshot.RestoreConfig{
		SnapshotPath:   db,
		Name:           name,
		OutputDataDir:  dataDir,
		PeerURLs:       []string{peer},
		InitialCluster: name + "=" + peer,
		// The member and cluster ids derive from it: a new one for each
		// restore, so that a member of the cluster before the restore is
		// refused rather than taken for one of this cluster.
		InitialClusterToken: "skiff-restore-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		// extract checked the database against the manifest's SHA-256.
		SkipHashCheck: true,
	})
	if err != nil {
		return fmt.Errorf("etcd restore: %w", err)
	}
	return os.Remove(db)
}

// restoreEncryption writes the snapshot's encryption configuration enc to
// encPath, keeping a different one there in r.EncryptionBackup first.
func restoreEncryption(r *RestoreReport, enc []byte, encPath, stamp string) error {
	if old, err := os.ReadFile(encPath); err == nil && !bytes.Equal(old, enc) {
		r.EncryptionBackup = encPath + ".before-restore-" + stamp
		if err := writeFileAtomic(r.EncryptionBackup, old); err != nil {
			return fmt.Errorf("keeping the current encryption configuration: %w", err)
		}
	}
	if err := writeFileAtomic(encPath, enc); err != nil {
		return fmt.Errorf("encryption configuration (run the restore again): %w", err)
	}
	return nil
}

// restoreStateFiles writes the snapshot's state files the data directory
// lacks (r.Written) and leaves those present as they are (r.Kept when
// different): the identities in place are the ones agents and admins use
// now, so only the missing are taken from the snapshot.
func restoreStateFiles(r *RestoreReport, dataDir string, state map[string][]byte) error {
	for _, sf := range stateFiles {
		data, ok := state[sf.path]
		if !ok {
			continue
		}
		dst := filepath.Join(dataDir, filepath.FromSlash(sf.path))
		cur, err := os.ReadFile(dst)
		switch {
		case err == nil:
			if !bytes.Equal(cur, data) {
				r.Kept = append(r.Kept, sf.path)
			}
		case errors.Is(err, fs.ErrNotExist):
			if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
				return err
			}
			if err := writeFileAtomic(dst, data); err != nil {
				return err
			}
			r.Written = append(r.Written, sf.path)
		default:
			return err
		}
	}
	return nil
}

// prepareDB readies a snapshot's database for a new single-member
// cluster (bootstrapMember makes it one): the old members are removed,
// the consistent index is reset, and the revision moves to RevisionBump
// past max(the snapshot's, replaced), marked compacted.
func prepareDB(path string, replaced int64) (rev int64, err error) {
	be, err := openBackend(path)
	if err != nil {
		return 0, err
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrCorrupt, r)
		}
	}()
	defer be.Close()
	if err := schema.NewMembershipBackend(zap.NewNop(), be).TrimMembershipFromBackend(); err != nil {
		return 0, err
	}
	tx := be.BatchTx()
	tx.LockOutsideApply()
	defer func() {
		tx.Unlock()
		be.ForceCommit()
	}()
	var latest mvcc.Revision
	if err := tx.UnsafeForEach(schema.Key, func(k, _ []byte) error {
		if r := mvcc.BytesToRev(k); r.GreaterThan(latest) {
			latest = r
		}
		return nil
	}); err != nil {
		return 0, err
	}
	rev = max(latest.Main, replaced) + RevisionBump
	tx.UnsafePut(schema.Key, mvcc.RevToBytes(mvcc.Revision{Main: rev}, mvcc.NewRevBytes()), []byte{})
	mvcc.UnsafeSetScheduledCompact(tx, rev)
	tx.UnsafeDelete(schema.Meta, schema.MetaConsistentIndexKeyName)
	tx.UnsafeDelete(schema.Meta, schema.MetaTermKeyName)
	tx.UnsafeDelete(schema.Meta, schema.MetaConfStateName)
	return rev, nil
}

// currentRevision is the latest revision of the database a restore
// replaces, 0 when there is none or it cannot be read.
func currentRevision(path string) (rev int64) {
	if _, err := os.Stat(path); err != nil {
		return 0
	}
	defer func() {
		if recover() != nil {
			rev = 0 // a damaged database, the usual reason to restore: the snapshot's revision is bumped alone
		}
	}()
	be, err := openBackend(path)
	if err != nil {
		return 0
	}
	defer be.Close()
	tx := be.ReadTx()
	tx.RLock()
	defer tx.RUnlock()
	_ = tx.UnsafeForEach(schema.Key, func(k, _ []byte) error {
		if len(k) >= 8 {
			rev = max(rev, int64(binary.BigEndian.Uint64(k[:8])))
		}
		return nil
	})
	return rev
}

func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(data)
	if werr == nil {
		werr = tmp.Chmod(0o600)
	}
	if werr == nil {
		werr = tmp.Sync()
	}
	if err := errors.Join(werr, tmp.Close()); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// ErrDataDirInUse: a server runs on the data directory.
var ErrDataDirInUse = datadirlock.ErrInUse

// lockDataDir takes the data directory's lock, as the API server does,
// so that a restore and a server never run on one data directory together.
func lockDataDir(dir string) (func(), error) {
	release, err := datadirlock.Lock(dir)
	if errors.Is(err, datadirlock.ErrInUse) {
		return nil, fmt.Errorf("%w: stop the server before restoring", err)
	}
	return release, err
}
