// Package etcdsnapshot takes, lists, prunes and restores snapshots of the
// server's embedded etcd. A snapshot is one file (see archive.go) that holds
// the etcd database together with what a restore needs beside it: the keys
// Secrets are encrypted with, and the server's identities and trust
// material. Snapshots live in <data-dir>/snapshots by default.
package etcdsnapshot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/storage/backend"
	"go.etcd.io/etcd/server/v3/storage/mvcc"
	"go.etcd.io/etcd/server/v3/storage/schema"
	"go.uber.org/zap"

	"skiff.dev/skiff/version"
)

// DirName is the snapshots' directory in the data directory.
const DirName = "snapshots"

// Default names of snapshot files (before -<node>-<unix time>).
const (
	OnDemandName  = "on-demand"
	ScheduledName = "etcd-snapshot"
)

// encryptionConfigPath is the encryption configuration's path in the
// archive's state/ (wherever --encryption-config put it on the server).
const encryptionConfigPath = "encryption-config.yaml"

// stateFile is a file of the data directory a snapshot carries.
type stateFile struct {
	path  string // relative to the data directory
	about string
}

// stateFiles are the files of the data directory a snapshot carries
// besides the encryption configuration: the server's identities (its
// serving certificate, which agents' join tokens pin; its key towards
// agents; the admin's and the MCP bridge's keys), the join token, the
// gossip keys, the audit policy, and the local agent's node key. The
// rest of the trust (skiff trust bindings, Nodes' keys, join token
// records) is in etcd. Files missing on the server are left out.
var stateFiles = []stateFile{
	{"serving.crt", "the API server's serving certificate (agents' join tokens pin its hash)"},
	{"serving.key", "the API server's serving key"},
	{"apiserver-client.crt", "the API server's certificate towards agents"},
	{"apiserver-client.key", "the API server's identity towards agents"},
	{"admin.crt", "the admin identity's certificate"},
	{"admin.key", "the admin identity (admin.kubeconfig is written from it)"},
	{"mcp.crt", "the MCP bridge identity's certificate"},
	{"mcp.key", "the MCP bridge identity"},
	{"join-token", "the node join token"},
	{"join-token.recorded", "the mark that the first join token is recorded in etcd"},
	{"gossip.keyring", "the gossip encryption keys"},
	{"audit-policy.yaml", "the audit policy"},
	{"agent/node.key", "the local agent's node key"},
}

// contains is what the manifest says a restore takes from the file.
var contains = []string{
	"the etcd database: every object (Workloads, Instances, Nodes with their keys, Secrets still encrypted, ConfigMaps, RBAC including skiff trust bindings, join token records)",
	"the encryption configuration: the keys that decrypt the Secrets in this database",
	"the server's identities and trust material: serving certificate and key, its key towards agents, the admin and MCP keys, the join token, the gossip keys, the audit policy, the local agent's key",
	"keep this file as secret as the data directory: its keys open every Secret and act as the admin",
}

// EmbeddedEndpoint is the client URL of the embedded etcd of the server
// whose data directory is dataDir (<data-dir>/etcd/client.sock, as
// apiserver starts it).
func EmbeddedEndpoint(dataDir string) (string, error) {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return "", err
	}
	return "unix://" + filepath.Join(abs, "etcd", "client.sock"), nil
}

// Store is the snapshots of one server.
type Store struct {
	// Dir holds the snapshot files (--etcd-snapshot-dir).
	Dir string
	// DataDir is the server's data directory (state files are read from it).
	DataDir string
	// EncryptionConfig is the server's encryption configuration file.
	EncryptionConfig string
	// Node names the server in file names.
	Node string
	// Endpoint is the etcd client URL to snapshot.
	Endpoint string
	// EtcdPrefix is the API server's key prefix (objects are counted by
	// resource under it).
	EtcdPrefix string
	// Now is the clock; nil is time.Now.
	Now func() time.Time

	// mu serialises saves, deletions and pruning.
	mu sync.Mutex
}

// Info is a snapshot file as list and save report it.
type Info struct {
	Name      string         `json:"name"`
	Path      string         `json:"path"`
	Size      int64          `json:"size"`
	Created   time.Time      `json:"created"`
	Node      string         `json:"node,omitempty"`
	Scheduled bool           `json:"scheduled"`
	Revision  int64          `json:"revision,omitempty"`
	Objects   map[string]int `json:"objects,omitempty"`
	Contains  []string       `json:"contains,omitempty"`
	// Error says why the file could not be read as a snapshot.
	Error string `json:"error,omitempty"`
}

// Errors the handler maps to HTTP statuses.
var (
	ErrInvalidName = errors.New("invalid snapshot name")
	ErrNotFound    = errors.New("no such snapshot")
	ErrExists      = errors.New("snapshot exists")
)

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$`)

// ValidName reports whether name may begin a snapshot file's name:
// lower-case letters, digits, '-', '_' and '.', at most 63, starting and
// ending with a letter or digit.
func ValidName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%w %q: use lower-case letters, digits, '-', '_' and '.' (at most 63, beginning and ending with a letter or digit)", ErrInvalidName, name)
	}
	return nil
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

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
	// The encryption configuration must be the one the database's Secrets
	// were written with: a key rotation during the snapshot changes it,
	// and then the snapshot is taken again.
	var encryption []byte
	for attempt := 0; ; attempt++ {
		before, err := os.ReadFile(s.EncryptionConfig)
		if err != nil {
			return Info{}, fmt.Errorf("encryption configuration: %w", err)
		}
		_ = os.Remove(tmpDB)
		if m.EtcdVersion, err = s.snapshotDB(ctx, tmpDB); err != nil {
			return Info{}, err
		}
		after, err := os.ReadFile(s.EncryptionConfig)
		if err != nil {
			return Info{}, fmt.Errorf("encryption configuration: %w", err)
		}
		if bytes.Equal(before, after) {
			encryption = after
			break
		}
		if attempt == 2 {
			return Info{}, errors.New("the encryption keys changed during each of 3 snapshots (a key rotation?); try again when it is done")
		}
	}
	var err error
	if m.Revision, m.Objects, err = scanDB(tmpDB, s.EtcdPrefix); err != nil {
		return Info{}, fmt.Errorf("reading the snapshot's database: %w", err)
	}
	dbFile, err := fileOf(tmpDB, dbName, "the etcd database")
	if err != nil {
		return Info{}, err
	}
	state := map[string][]byte{encryptionConfigPath: encryption}
	m.Files = []File{dbFile, memFile(encryptionConfigPath, encryption, "the encryption configuration: the keys Secrets are encrypted with")}
	for _, sf := range stateFiles {
		data, err := os.ReadFile(filepath.Join(s.DataDir, filepath.FromSlash(sf.path)))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return Info{}, err
		}
		state[sf.path] = data
		m.Files = append(m.Files, memFile(sf.path, data, sf.about))
	}
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

// openBackend opens an etcd database file (which no one else has open).
func openBackend(path string) (be backend.Backend, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: %v", path, r)
		}
	}()
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	return backend.NewDefaultBackend(zap.NewNop(), path, backend.WithTimeout(5*time.Second)), nil
}

// scanDB reads a database's latest revision and counts the keys that
// exist at it by resource.
func scanDB(path, prefix string) (rev int64, objects map[string]int, err error) {
	be, err := openBackend(path)
	if err != nil {
		return 0, nil, err
	}
	defer be.Close()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: %v", path, r)
		}
	}()
	live := map[string]bool{}
	tx := be.ReadTx()
	tx.RLock()
	err = tx.UnsafeForEach(schema.Key, func(k, v []byte) error {
		r := mvcc.BytesToRev(k)
		rev = max(rev, r.Main)
		key, ok := kvKey(v)
		if !ok {
			return nil // a revision bump's empty entry
		}
		if mvcc.IsTombstone(k) {
			delete(live, string(key))
		} else {
			live[string(key)] = true
		}
		return nil
	})
	tx.RUnlock()
	if err != nil {
		return 0, nil, err
	}
	objects = map[string]int{}
	for k := range live {
		objects[resourceOf(k, prefix)]++
	}
	return rev, objects, nil
}

// kvKey is field 1 (key) of an mvccpb.KeyValue in protobuf wire format.
func kvKey(v []byte) ([]byte, bool) {
	for len(v) > 0 {
		tag, n := binary.Uvarint(v)
		if n <= 0 {
			return nil, false
		}
		v = v[n:]
		switch tag & 7 {
		case 0: // varint
			if _, n = binary.Uvarint(v); n <= 0 {
				return nil, false
			}
			v = v[n:]
		case 1: // 64-bit
			if len(v) < 8 {
				return nil, false
			}
			v = v[8:]
		case 2: // length-delimited
			l, n := binary.Uvarint(v)
			if n <= 0 || uint64(len(v)-n) < l {
				return nil, false
			}
			if tag>>3 == 1 {
				return v[n : n+int(l)], true
			}
			v = v[n+int(l):]
		case 5: // 32-bit
			if len(v) < 4 {
				return nil, false
			}
			v = v[4:]
		default:
			return nil, false
		}
	}
	return nil, false
}

// resourceOf is the resource a key stores: prefix/secrets/ns/name is
// "secrets", prefix/skiff.dev/workloads/ns/name "skiff.dev/workloads".
func resourceOf(key, prefix string) string {
	rest, ok := strings.CutPrefix(key, strings.TrimSuffix(prefix, "/")+"/")
	if !ok || prefix == "" {
		return "other"
	}
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) >= 3 && strings.Contains(parts[0], ".") {
		return parts[0] + "/" + parts[1]
	}
	if len(parts) < 2 {
		return "other"
	}
	return parts[0]
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

func infoOf(m Manifest, path string, size int64) Info {
	return Info{
		Name: filepath.Base(path), Path: path, Size: size, Created: m.Created, Node: m.Node, Scheduled: m.Scheduled,
		Revision: m.Revision, Objects: m.Objects, Contains: m.Contains,
	}
}

// List returns the snapshot files in Dir, oldest first. A file that is
// not a readable snapshot is listed with Error set.
func (s *Store) List() ([]Info, error) {
	entries, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Info
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") || !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(s.Dir, e.Name())
		fi, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		m, err := ReadManifest(path)
		if err != nil {
			out = append(out, Info{Name: e.Name(), Path: path, Size: fi.Size(), Created: fi.ModTime().UTC(), Error: err.Error()})
			continue
		}
		out = append(out, infoOf(m, path, fi.Size()))
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// Delete removes the snapshot file name from Dir.
func (s *Store) Delete(name string) error {
	if name == "" || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") {
		return fmt.Errorf("%w %q: give a snapshot's file name, as list shows it", ErrInvalidName, name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	path := filepath.Join(s.Dir, name)
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s", ErrNotFound, path)
	}
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a file", ErrNotFound, path)
	}
	if err := os.Remove(path); err != nil {
		return err
	}
	return syncDir(s.Dir)
}

// Prune deletes this node's scheduled snapshots but the newest keep, and
// returns the names it deleted. Snapshots saved on demand are kept.
func (s *Store) Prune(keep int) ([]string, error) {
	all, err := s.List()
	if err != nil {
		return nil, err
	}
	var scheduled []Info
	for _, in := range all {
		if in.Error == "" && in.Scheduled && in.Node == s.Node {
			scheduled = append(scheduled, in)
		}
	}
	var deleted []string
	for i := 0; i < len(scheduled)-keep; i++ { // oldest first
		if err := s.Delete(scheduled[i].Name); err != nil && !errors.Is(err, ErrNotFound) {
			return deleted, err
		}
		deleted = append(deleted, scheduled[i].Name)
	}
	return deleted, nil
}
