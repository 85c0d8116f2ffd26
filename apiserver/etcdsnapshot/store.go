// Package etcdsnapshot takes, lists, prunes and restores snapshots of the
// server's embedded etcd. A snapshot is one file (see archive.go) that holds
// the etcd database together with what a restore needs beside it: the keys
// Secrets are encrypted with, and the server's identities and trust
// material. Snapshots live in <data-dir>/snapshots by default.
package etcdsnapshot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
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

// snapshotFileName is how Save names snapshots: <name>-<node>-<unix time>.
var snapshotFileName = regexp.MustCompile(`^[^/]+-[^/]+-[0-9]{9,}$`)

// Delete removes the snapshot file name from Dir: a snapshot, or a file
// named as one (a damaged snapshot), never another file of a shared Dir.
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
	if _, err := ReadManifest(path); err != nil && !snapshotFileName.MatchString(name) {
		// The directory may be shared (--etcd-snapshot-dir /var/backups):
		// only what is a snapshot (or named as one: a damaged one) goes.
		return fmt.Errorf("%w: %s is not a snapshot (%v)", ErrNotFound, path, err)
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
