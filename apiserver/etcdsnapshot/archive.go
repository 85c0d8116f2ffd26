package etcdsnapshot

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"time"
)

// A snapshot file is an uncompressed tar archive (`tar tvf` lists it):
//
//	manifest.json                 what the file holds, with each member's size and SHA-256
//	etcd.db                       the etcd database (etcd's Maintenance.Snapshot, its trailer checked and cut)
//	state/encryption-config.yaml  the keys Secrets are encrypted with in etcd
//	state/<file>                  the server's identities and trust material (see stateFiles)
//
// manifest.json comes first, so that listing reads a few hundred bytes.
// Everything else is checked against it before a restore touches anything.
const (
	// Format is the manifest's format field.
	Format       = "skiff.dev/etcd-snapshot/v1"
	manifestName = "manifest.json"
	dbName       = "etcd.db"
	statePrefix  = "state/"
	// maxManifest and maxStateFile bound what is read into memory.
	maxManifest  = 1 << 20
	maxStateFile = 1 << 20
)

// Manifest describes a snapshot file. It is the file's first member.
type Manifest struct {
	Format string `json:"format"`
	// Name is the snapshot's file name: <name>-<node>-<unix time>.
	Name string `json:"name"`
	// Node is the server that took it.
	Node    string    `json:"node"`
	Created time.Time `json:"created"`
	// Scheduled snapshots are the ones --etcd-snapshot-retention prunes.
	Scheduled    bool   `json:"scheduled"`
	SkiffVersion string `json:"skiffVersion,omitempty"`
	EtcdVersion  string `json:"etcdVersion,omitempty"`
	// EtcdPrefix is the key prefix the API server stores objects under.
	EtcdPrefix string `json:"etcdPrefix,omitempty"`
	// Revision is the etcd revision the database is at.
	Revision int64 `json:"revision"`
	// Objects counts the keys that exist at Revision by resource
	// ("secrets", "skiff.dev/workloads"; keys outside EtcdPrefix under "other").
	Objects map[string]int `json:"objects,omitempty"`
	// Files are the archive's other members, in order.
	Files []File `json:"files"`
	// Contains says in words what a restore takes from the file.
	Contains []string `json:"contains"`
}

// File is one member of the archive after the manifest.
type File struct {
	// Path in the archive: etcd.db or state/<path in the data directory>.
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// About says what it is.
	About string `json:"about"`
}

// Keys is the total of Objects.
func (m Manifest) Keys() int {
	n := 0
	for _, c := range m.Objects {
		n += c
	}
	return n
}

// ErrCorrupt: the file is not a whole, intact snapshot.
var ErrCorrupt = errors.New("snapshot file is corrupt or incomplete")

// writeArchive writes the manifest, then the database from db, then the
// state files, to w. The manifest's Files must already describe them.
func writeArchive(w io.Writer, m Manifest, db io.Reader, state map[string][]byte) error {
	tw := tar.NewWriter(w)
	manifest, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	manifest = append(manifest, '\n')
	put := func(name string, size int64, r io.Reader) error {
		hdr := &tar.Header{Name: name, Mode: 0o600, Size: size, ModTime: m.Created, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		n, err := io.Copy(tw, r)
		if err == nil && n != size {
			err = fmt.Errorf("%s: wrote %d bytes, want %d", name, n, size)
		}
		return err
	}
	if err := put(manifestName, int64(len(manifest)), bytes.NewReader(manifest)); err != nil {
		return err
	}
	for _, f := range m.Files {
		var r io.Reader
		if f.Path == dbName {
			r = db
		} else {
			r = bytes.NewReader(state[f.Path])
		}
		if err := put(f.Path, f.Size, r); err != nil {
			return err
		}
	}
	return tw.Close()
}

// ReadManifest reads a snapshot file's manifest (its first member), without
// checking the rest.
func ReadManifest(file string) (Manifest, error) {
	f, err := os.Open(file)
	if err != nil {
		return Manifest{}, err
	}
	defer f.Close()
	return readManifest(tar.NewReader(f), file)
}

func readManifest(tr *tar.Reader, file string) (Manifest, error) {
	hdr, err := tr.Next()
	if err != nil {
		return Manifest{}, fmt.Errorf("%s: %w: not a skiff snapshot (no tar archive: %v)", file, ErrCorrupt, err)
	}
	if hdr.Name != manifestName || hdr.Size > maxManifest {
		return Manifest{}, fmt.Errorf("%s: %w: not a skiff snapshot (first member %q, want %s)", file, ErrCorrupt, hdr.Name, manifestName)
	}
	var m Manifest
	dec := json.NewDecoder(io.LimitReader(tr, maxManifest))
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("%s: %w: manifest: %v", file, ErrCorrupt, err)
	}
	if m.Format != Format {
		return Manifest{}, fmt.Errorf("%s: format %q, this skiff reads %q", file, m.Format, Format)
	}
	return m, nil
}

// verified is a snapshot file checked against its manifest: the database
// written out, the state files in memory.
type verified struct {
	Manifest Manifest
	State    map[string][]byte // by path in the data directory
}

// extract reads the whole snapshot file, writing the database to dbPath
// (created 0600, must not exist) and checking every member's size and
// SHA-256 against the manifest. Any difference, a member missing, extra
// or repeated, or a truncated file is ErrCorrupt.
func extract(file, dbPath string) (verified, error) {
	f, err := os.Open(file)
	if err != nil {
		return verified{}, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	m, err := readManifest(tr, file)
	if err != nil {
		return verified{}, err
	}
	want := map[string]File{}
	for _, mf := range m.Files {
		if _, dup := want[mf.Path]; dup || (mf.Path != dbName && !validStatePath(mf.Path)) {
			return verified{}, fmt.Errorf("%s: %w: manifest lists %q", file, ErrCorrupt, mf.Path)
		}
		want[mf.Path] = mf
	}
	if _, ok := want[dbName]; !ok {
		return verified{}, fmt.Errorf("%s: %w: no %s in the manifest", file, ErrCorrupt, dbName)
	}
	v := verified{Manifest: m, State: map[string][]byte{}}
	seen := map[string]bool{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return verified{}, fmt.Errorf("%s: %w: %v", file, ErrCorrupt, err)
		}
		mf, ok := want[hdr.Name]
		if !ok || seen[hdr.Name] {
			return verified{}, fmt.Errorf("%s: %w: unexpected member %q", file, ErrCorrupt, hdr.Name)
		}
		seen[hdr.Name] = true
		if hdr.Size != mf.Size {
			return verified{}, fmt.Errorf("%s: %w: %s is %d bytes, the manifest says %d", file, ErrCorrupt, hdr.Name, hdr.Size, mf.Size)
		}
		h := sha256.New()
		if hdr.Name == dbName {
			out, err := os.OpenFile(dbPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return verified{}, err
			}
			_, cerr := io.Copy(io.MultiWriter(out, h), tr)
			if cerr == nil {
				cerr = out.Sync()
			}
			if err := errors.Join(cerr, out.Close()); err != nil {
				return verified{}, fmt.Errorf("%s: %s: %w", file, dbName, corruptIfEOF(err))
			}
		} else {
			if mf.Size > maxStateFile {
				return verified{}, fmt.Errorf("%s: %w: %s is too large", file, ErrCorrupt, hdr.Name)
			}
			data, err := io.ReadAll(io.TeeReader(tr, h))
			if err != nil {
				return verified{}, fmt.Errorf("%s: %s: %w", file, hdr.Name, corruptIfEOF(err))
			}
			v.State[hdr.Name[len(statePrefix):]] = data
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != mf.SHA256 {
			return verified{}, fmt.Errorf("%s: %w: %s has SHA-256 %s, the manifest says %s", file, ErrCorrupt, hdr.Name, got, mf.SHA256)
		}
	}
	for name := range want {
		if !seen[name] {
			return verified{}, fmt.Errorf("%s: %w: %s is missing (truncated file?)", file, ErrCorrupt, name)
		}
	}
	return v, nil
}

func corruptIfEOF(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return err
}

// validStatePath: state/<relative path, clean, without "..">.
func validStatePath(p string) bool {
	rel, ok := strings.CutPrefix(p, statePrefix)
	return ok && rel != "" && path.Clean(rel) == rel && !path.IsAbs(rel) && !slices.Contains(strings.Split(rel, "/"), "..")
}
