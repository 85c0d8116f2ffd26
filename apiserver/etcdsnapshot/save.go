package etcdsnapshot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"skiff.dev/skiff/version"
)

// Save snapshots etcd into <Dir>/<name>-<Node>-<unix time>.
func (s *Store) Save(ctx context.Context, name string, scheduled bool) (Info, error) {
	if err := ValidName(name); err != nil {
		return Info{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	created := s.now().UTC().Truncate(time.Second)
	fileName := fmt.Sprintf("%s-%s-%d", name, s.Node, created.Unix())
	final := filepath.Join(s.Dir, fileName)
	if _, err := os.Lstat(final); err == nil {
		return Info{}, fmt.Errorf("%w: %s (one a second per name)", ErrExists, final)
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return Info{}, fmt.Errorf("snapshot dir: %w", err)
	}
	tmpDB := filepath.Join(s.Dir, "."+fileName+".db.tmp")
	defer os.Remove(tmpDB)
	m := Manifest{
		Format: Format, Name: fileName, Node: s.Node, Created: created, Scheduled: scheduled,
		SkiffVersion: version.Version, EtcdPrefix: s.EtcdPrefix, Contains: contains,
	}
	encryption, etcdVersion, err := s.snapshotWithEncryption(ctx, tmpDB)
	if err != nil {
		return Info{}, err
	}
	m.EtcdVersion = etcdVersion
	if m.Revision, m.Objects, err = scanDB(tmpDB, s.EtcdPrefix); err != nil {
		return Info{}, fmt.Errorf("reading the snapshot's database: %w", err)
	}
	dbFile, err := fileOf(tmpDB, dbName, "the etcd database")
	if err != nil {
		return Info{}, err
	}
	state := map[string][]byte{encryptionConfigPath: encryption}
	m.Files = []File{dbFile, memFile(encryptionConfigPath, encryption, "the encryption configuration: the keys Secrets are encrypted with")}
	files, err := s.readStateFiles(state)
	if err != nil {
		return Info{}, err
	}
	m.Files = append(m.Files, files...)
	archiveState := map[string][]byte{}
	for p, data := range state {
		archiveState[statePrefix+p] = data
	}
	size, err := writeFileNoClobber(final, func(w io.Writer) error {
		db, err := os.Open(tmpDB)
		if err != nil {
			return err
		}
		defer db.Close()
		return writeArchive(w, m, db, archiveState)
	})
	if err != nil {
		return Info{}, err
	}
	return infoOf(m, final, size), nil
}

// snapshotWithEncryption snapshots etcd into tmpDB and returns the
// encryption configuration with it, and etcd's version. The encryption
// configuration must be the one the database's Secrets were written with:
// a key rotation during the snapshot changes it, and then the snapshot is
// taken again (3 times at most).
func (s *Store) snapshotWithEncryption(ctx context.Context, tmpDB string) (encryption []byte, etcdVersion string, err error) {
	for attempt := 0; ; attempt++ {
		before, err := os.ReadFile(s.EncryptionConfig)
		if err != nil {
			return nil, "", fmt.Errorf("encryption configuration: %w", err)
		}
		_ = os.Remove(tmpDB)
		if etcdVersion, err = s.snapshotDB(ctx, tmpDB); err != nil {
			return nil, "", err
		}
		after, err := os.ReadFile(s.EncryptionConfig)
		if err != nil {
			return nil, "", fmt.Errorf("encryption configuration: %w", err)
		}
		if bytes.Equal(before, after) {
			return after, etcdVersion, nil
		}
		if attempt == 2 {
			return nil, "", errors.New("the encryption keys changed during each of 3 snapshots (a key rotation?); try again when it is done")
		}
	}
}

// readStateFiles reads the data directory's state files into state (by
// path in the data directory), skipping the missing, and returns their
// manifest entries.
func (s *Store) readStateFiles(state map[string][]byte) ([]File, error) {
	var files []File
	for _, sf := range stateFiles {
		data, err := os.ReadFile(filepath.Join(s.DataDir, filepath.FromSlash(sf.path)))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		state[sf.path] = data
		files = append(files, memFile(sf.path, data, sf.about))
	}
	return files, nil
}

// snapshotDB streams etcd's snapshot into path and checks the SHA-256
// etcd appends to it (which path does not keep).
func (s *Store) snapshotDB(ctx context.Context, path string) (etcdVersion string, err error) {
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{s.Endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return "", fmt.Errorf("etcd client %s: %w", s.Endpoint, err)
	}
	defer c.Close()
	if st, err := c.Status(ctx, s.Endpoint); err == nil {
		etcdVersion = st.Version
	}
	rc, err := c.Snapshot(ctx)
	if err != nil {
		return "", fmt.Errorf("etcd snapshot: %w", err)
	}
	defer rc.Close()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	split := &trailerSplitter{w: io.MultiWriter(f, h)}
	n, cerr := io.Copy(split, rc)
	if cerr == nil {
		cerr = f.Sync()
	}
	if err := errors.Join(cerr, f.Close()); err != nil {
		return "", fmt.Errorf("etcd snapshot: %w", err)
	}
	// etcd sends the database, then its SHA-256; a database is whole pages.
	if n%512 != sha256.Size || len(split.tail) != sha256.Size {
		return "", fmt.Errorf("etcd snapshot: %d bytes is not a database and its checksum", n)
	}
	if !bytes.Equal(h.Sum(nil), split.tail) {
		return "", errors.New("etcd snapshot: the database does not match the checksum etcd sent")
	}
	return etcdVersion, nil
}

// trailerSplitter writes all but the last sha256.Size bytes it is given
// to w, and keeps those in tail.
type trailerSplitter struct {
	w    io.Writer
	tail []byte
}

func (t *trailerSplitter) Write(p []byte) (int, error) {
	t.tail = append(t.tail, p...)
	if n := len(t.tail) - sha256.Size; n > 0 {
		if _, err := t.w.Write(t.tail[:n]); err != nil {
			return 0, err
		}
		t.tail = append(t.tail[:0], t.tail[n:]...)
	}
	return len(p), nil
}

func memFile(p string, data []byte, about string) File {
	sum := sha256.Sum256(data)
	return File{Path: statePrefix + p, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]), About: about}
}

func fileOf(path, name, about string) (File, error) {
	f, err := os.Open(path)
	if err != nil {
		return File{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return File{}, err
	}
	return File{Path: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil)), About: about}, nil
}

// writeFileNoClobber writes path (0600) through a temporary file, synced,
// and links it into place only if path does not exist yet.
func writeFileNoClobber(path string, write func(io.Writer) error) (int64, error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	werr := write(tmp)
	if werr == nil {
		werr = tmp.Chmod(0o600)
	}
	if werr == nil {
		werr = tmp.Sync()
	}
	var size int64
	if st, err := tmp.Stat(); err == nil {
		size = st.Size()
	}
	if err := errors.Join(werr, tmp.Close()); err != nil {
		return 0, err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return 0, fmt.Errorf("%w: %s", ErrExists, path)
		}
		return 0, err
	}
	return size, syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
