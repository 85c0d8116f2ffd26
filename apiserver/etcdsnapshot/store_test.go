package etcdsnapshot

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// startEtcd starts etcd in <dataDir>/etcd as the API server does (same
// name, directories and unix sockets) and returns a client.
func startEtcd(t *testing.T, dataDir string) (*clientv3.Client, func()) {
	t.Helper()
	dir := filepath.Join(dataDir, "etcd")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	client := url.URL{Scheme: "unix", Path: filepath.Join(dir, "client.sock")}
	peer := url.URL{Scheme: "unix", Path: filepath.Join(dir, "peer.sock")}
	_ = os.Remove(client.Path)
	_ = os.Remove(peer.Path)
	cfg := embed.NewConfig()
	cfg.Name = "skiff"
	cfg.Dir = filepath.Join(dir, "data")
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.AutoCompactionRetention = "0"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		t.Fatalf("etcd: %v", err)
	case <-time.After(30 * time.Second):
		e.Close()
		t.Fatal("etcd not ready after 30s")
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{client.String()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	var once bool
	stop := func() {
		if once {
			return
		}
		once = true
		c.Close()
		e.Close()
	}
	t.Cleanup(stop)
	return c, stop
}

// newTestServer is a data directory with an encryption configuration and
// some identity files, and its etcd running.
func newTestServer(t *testing.T) (dataDir string, c *clientv3.Client, stop func(), s *Store) {
	t.Helper()
	dataDir = t.TempDir()
	for name, content := range map[string]string{
		"encryption-config.yaml": "keys: one\n",
		"serving.crt":            "serving cert\n",
		"serving.key":            "serving key\n",
		"admin.key":              "admin key\n",
		"agent/node.key":         "node key\n",
	} {
		p := filepath.Join(dataDir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c, stop = startEtcd(t, dataDir)
	ep, err := EmbeddedEndpoint(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	s = &Store{
		Dir: filepath.Join(dataDir, DirName), DataDir: dataDir, Node: "node-1", Endpoint: ep, EtcdPrefix: "/registry",
		EncryptionConfig: filepath.Join(dataDir, "encryption-config.yaml"),
	}
	return dataDir, c, stop, s
}

func put(t *testing.T, c *clientv3.Client, kv ...string) {
	t.Helper()
	for i := 0; i < len(kv); i += 2 {
		if _, err := c.Put(context.Background(), kv[i], kv[i+1]); err != nil {
			t.Fatal(err)
		}
	}
}

func get(t *testing.T, c *clientv3.Client, key string) (string, bool) {
	t.Helper()
	resp, err := c.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return "", false
	}
	return string(resp.Kvs[0].Value), true
}

func TestSaveListRestore(t *testing.T) {
	dataDir, c, stop, s := newTestServer(t)
	ctx := context.Background()
	put(t, c,
		"/registry/secrets/default/a", "secret a",
		"/registry/secrets/default/b", "secret b",
		"/registry/skiff.dev/workloads/default/web", "workload web",
		"/registry/namespaces/default", "ns",
		"compact_rev_key", "x",
	)
	if _, err := c.Delete(ctx, "/registry/secrets/default/b"); err != nil {
		t.Fatal(err)
	}
	put(t, c, "/registry/secrets/default/a", "secret a v2")

	info, err := s.Save(ctx, "before", false)
	if err != nil {
		t.Fatalf("Save: %v", err)
	}
	if !strings.HasPrefix(info.Name, "before-node-1-") || info.Path != filepath.Join(s.Dir, info.Name) || info.Size == 0 {
		t.Errorf("Save = %+v", info)
	}
	wantObjects := map[string]int{"secrets": 1, "skiff.dev/workloads": 1, "namespaces": 1, "other": 1}
	if fmt.Sprint(info.Objects) != fmt.Sprint(wantObjects) {
		t.Errorf("objects = %v, want %v", info.Objects, wantObjects)
	}
	snapRev := info.Revision
	if resp, _ := c.Get(ctx, "x"); info.Revision != resp.Header.Revision {
		t.Errorf("revision = %d, etcd is at %d", info.Revision, resp.Header.Revision)
	}
	if fi, err := os.Stat(info.Path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("snapshot file mode: %v %v", fi.Mode(), err)
	}
	// The archive: manifest first, then the database and the state files.
	m, err := ReadManifest(info.Path)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range m.Files {
		paths = append(paths, f.Path)
	}
	if got, want := strings.Join(paths, " "), "etcd.db state/encryption-config.yaml state/serving.crt state/serving.key state/admin.key state/agent/node.key"; got != want {
		t.Errorf("files = %s, want %s", got, want)
	}
	if m.Node != "node-1" || m.Scheduled || m.Format != Format || len(m.Contains) == 0 {
		t.Errorf("manifest = %+v", m)
	}

	list, err := s.List()
	if err != nil || len(list) != 1 || list[0].Name != info.Name || list[0].Revision != info.Revision {
		t.Fatalf("List = %+v, %v", list, err)
	}

	// Changes after the snapshot: the restore undoes them.
	put(t, c, "/registry/secrets/default/a", "secret a v3", "/registry/secrets/default/later", "later")
	if _, err := c.Delete(ctx, "/registry/skiff.dev/workloads/default/web"); err != nil {
		t.Fatal(err)
	}
	lease, err := c.Grant(ctx, 3600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "/registry/events/default/e", "event", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	resp, _ := c.Get(ctx, "x")
	beforeRestoreRev := resp.Header.Revision

	// Not while etcd (the server) holds the data directory.
	unlock, err := lockDataDir(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(RestoreOptions{File: info.Path, DataDir: dataDir}); !errors.Is(err, ErrDataDirInUse) {
		t.Errorf("Restore while locked: %v, want ErrDataDirInUse", err)
	}
	unlock()
	stop()

	// Keys rotated and the admin key replaced since: the snapshot's keys
	// come back, the present identity stays; a missing file is written.
	os.WriteFile(filepath.Join(dataDir, "encryption-config.yaml"), []byte("keys: two\n"), 0o600)
	os.WriteFile(filepath.Join(dataDir, "admin.key"), []byte("new admin key\n"), 0o600)
	os.Remove(filepath.Join(dataDir, "serving.key"))

	rep, err := Restore(RestoreOptions{File: info.Path, DataDir: dataDir})
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if rep.Revision != beforeRestoreRev+RevisionBump {
		t.Errorf("restored revision = %d, want %d (the replaced store's %d + bump)", rep.Revision, beforeRestoreRev+RevisionBump, beforeRestoreRev)
	}
	if rep.Previous == "" {
		t.Error("no previous etcd directory kept")
	} else if _, err := os.Stat(filepath.Join(rep.Previous, "data", "member")); err != nil {
		t.Errorf("previous etcd directory: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dataDir, "encryption-config.yaml")); string(b) != "keys: one\n" {
		t.Errorf("encryption config = %q, want the snapshot's", b)
	}
	if b, _ := os.ReadFile(rep.EncryptionBackup); string(b) != "keys: two\n" {
		t.Errorf("encryption backup %s = %q", rep.EncryptionBackup, b)
	}
	if b, _ := os.ReadFile(filepath.Join(dataDir, "admin.key")); string(b) != "new admin key\n" {
		t.Errorf("admin.key = %q, want the present one kept", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dataDir, "serving.key")); string(b) != "serving key\n" {
		t.Errorf("serving.key = %q, want it written from the snapshot", b)
	}
	if fmt.Sprint(rep.Kept) != "[admin.key]" || fmt.Sprint(rep.Written) != "[serving.key]" {
		t.Errorf("kept %v, written %v", rep.Kept, rep.Written)
	}

	c, stop = startEtcd(t, dataDir)
	for key, want := range map[string]string{
		"/registry/secrets/default/a":               "secret a v2",
		"/registry/skiff.dev/workloads/default/web": "workload web",
		"/registry/namespaces/default":              "ns",
	} {
		if got, ok := get(t, c, key); !ok || got != want {
			t.Errorf("after restore %s = %q (%v), want %q", key, got, ok, want)
		}
	}
	for _, key := range []string{"/registry/secrets/default/b", "/registry/secrets/default/later", "/registry/events/default/e"} {
		if got, ok := get(t, c, key); ok {
			t.Errorf("after restore %s = %q, want it gone", key, got)
		}
	}
	// The revision moved on and history before it is compacted: a watch
	// from a revision a client saw before gets ErrCompacted.
	resp, err = c.Get(ctx, "/registry/secrets/default/a")
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Revision != rep.Revision {
		t.Errorf("etcd revision after restore = %d, want %d", resp.Header.Revision, rep.Revision)
	}
	if _, err := c.Get(ctx, "/registry/secrets/default/a", clientv3.WithRev(snapRev)); err == nil || !strings.Contains(err.Error(), "compacted") {
		t.Errorf("read at the snapshot's revision %d: %v, want compacted", snapRev, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	w := c.Watch(wctx, "/registry/", clientv3.WithPrefix(), clientv3.WithRev(beforeRestoreRev))
	if wr := <-w; wr.CompactRevision == 0 {
		t.Errorf("watch from %d: %+v, want it compacted", beforeRestoreRev, wr)
	}
	cancel()
	// It takes writes, and keeps them over a restart.
	put(t, c, "/registry/secrets/default/after", "after")
	stop()
	c, stop = startEtcd(t, dataDir)
	defer stop()
	if got, _ := get(t, c, "/registry/secrets/default/after"); got != "after" {
		t.Errorf("write after restore, after a restart = %q", got)
	}
	if got, _ := get(t, c, "/registry/secrets/default/a"); got != "secret a v2" {
		t.Errorf("restored key after a restart = %q", got)
	}
	members, err := c.MemberList(ctx)
	if err != nil || len(members.Members) != 1 {
		t.Errorf("members = %v, %v", members, err)
	}

	// A snapshot of the restored store restores too.
	info2, err := s.Save(ctx, "again", false)
	if err != nil {
		t.Fatalf("Save after restore: %v", err)
	}
	if info2.Revision <= rep.Revision || info2.Objects["secrets"] != 2 {
		t.Errorf("second snapshot: revision %d, objects %v", info2.Revision, info2.Objects)
	}
}

func TestRestoreRefusesCorrupt(t *testing.T) {
	dataDir, c, stop, s := newTestServer(t)
	put(t, c, "/registry/secrets/default/a", "a")
	info, err := s.Save(context.Background(), "x", false)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	good, err := os.ReadFile(info.Path)
	if err != nil {
		t.Fatal(err)
	}
	// Where the database's bytes are in the file.
	dbAt := offsetOf(t, info.Path, dbName)
	tmp := t.TempDir()
	flip := func(at int64) []byte {
		b := append([]byte(nil), good...)
		b[at] ^= 0x40
		return b
	}
	for name, data := range map[string][]byte{
		"truncated":   good[:len(good)/2],
		"db flipped":  flip(dbAt + 5000),
		"empty":       {},
		"not a tar":   []byte("hello, this is not a snapshot\n"),
		"head cut":    good[512:],
		"last member": good[:len(good)-2048],
	} {
		p := filepath.Join(tmp, strings.ReplaceAll(name, " ", "-"))
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Restore(RestoreOptions{File: p, DataDir: dataDir})
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Restore = %v, want ErrCorrupt", name, err)
		}
		// Nothing was touched: the etcd directory is the one there was.
		if _, err := os.Stat(filepath.Join(dataDir, "etcd", "data", "member", "wal")); err != nil {
			t.Errorf("%s: the data directory's etcd was touched: %v", name, err)
		}
		if m, _ := filepath.Glob(filepath.Join(dataDir, "etcd.*")); len(m) != 0 {
			t.Errorf("%s: left %v", name, m)
		}
	}
	if _, err := Restore(RestoreOptions{File: filepath.Join(tmp, "missing"), DataDir: dataDir}); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	// The good file still restores.
	if _, err := Restore(RestoreOptions{File: info.Path, DataDir: dataDir}); err != nil {
		t.Errorf("good file: %v", err)
	}
}

// offsetOf is where member name's data begins in a tar file.
func offsetOf(t *testing.T, file, name string) int64 {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err != nil {
			t.Fatalf("%s not in %s: %v", name, file, err)
		}
		if hdr.Name == name {
			at, _ := f.Seek(0, io.SeekCurrent)
			return at
		}
	}
}

func TestPruneAndDelete(t *testing.T) {
	_, _, _, s := newTestServer(t)
	now := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	s.Now = func() time.Time { return now }
	ctx := context.Background()
	var scheduled []string
	for i := 0; i < 7; i++ {
		now = now.Add(time.Hour)
		info, err := s.Save(ctx, ScheduledName, true)
		if err != nil {
			t.Fatal(err)
		}
		scheduled = append(scheduled, info.Name)
		if i == 2 {
			now = now.Add(time.Minute)
			if _, err := s.Save(ctx, "keep-me", false); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Another node's scheduled snapshot in the same directory is its own.
	other := &Store{Dir: s.Dir, DataDir: s.DataDir, EncryptionConfig: s.EncryptionConfig, Node: "node-2", Endpoint: s.Endpoint, EtcdPrefix: s.EtcdPrefix, Now: s.Now}
	last := now
	now = now.Add(-100 * time.Hour)
	otherInfo, err := other.Save(ctx, ScheduledName, true)
	if err != nil {
		t.Fatal(err)
	}
	now = last
	// And a file that is no snapshot is listed, flagged, and never pruned.
	os.WriteFile(filepath.Join(s.Dir, "junk"), []byte("junk"), 0o600)

	deleted, err := s.Prune(3)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(deleted) != fmt.Sprint(scheduled[:4]) {
		t.Errorf("pruned %v, want the 4 oldest scheduled %v", deleted, scheduled[:4])
	}
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, in := range list {
		if in.Error != "" {
			names = append(names, "!"+in.Name)
			continue
		}
		names = append(names, in.Name)
	}
	want := []string{otherInfo.Name, "keep-me-node-1-1740798060"}
	want = append(want, scheduled[4:]...)
	got := strings.Join(names, " ")
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("list %s lacks %s", got, w)
		}
	}
	if !strings.Contains(got, "!junk") || len(names) != len(want)+1 {
		t.Errorf("list = %s", got)
	}

	// Same name in the same second: refused, not overwritten.
	if _, err := s.Save(ctx, ScheduledName, true); !errors.Is(err, ErrExists) {
		t.Errorf("second save in the same second: %v, want ErrExists", err)
	}
	for _, bad := range []string{"", "../x", ".hidden", "a/b", "Upper", "-x", strings.Repeat("a", 64)} {
		if _, err := s.Save(ctx, bad, false); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Save(%q) = %v, want ErrInvalidName", bad, err)
		}
	}
	for _, bad := range []string{"", "../x", ".hidden", "a/b"} {
		if err := s.Delete(bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Delete(%q) = %v, want ErrInvalidName", bad, err)
		}
	}
	if err := s.Delete("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Delete(nope) = %v, want ErrNotFound", err)
	}
	if err := s.Delete(scheduled[6]); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir, scheduled[6])); !os.IsNotExist(err) {
		t.Errorf("deleted snapshot still there: %v", err)
	}
}

func TestKVKey(t *testing.T) {
	// mvccpb.KeyValue{Key: "/a/b", CreateRevision: 5, ModRevision: 300, Version: 1, Value: "v"}
	enc := []byte{0x0a, 4, '/', 'a', '/', 'b', 0x10, 5, 0x18, 0xac, 0x02, 0x20, 1, 0x2a, 1, 'v'}
	if k, ok := kvKey(enc); !ok || string(k) != "/a/b" {
		t.Errorf("kvKey = %q %v", k, ok)
	}
	// Key after other fields.
	if k, ok := kvKey(append([]byte{0x10, 5}, enc...)); !ok || string(k) != "/a/b" {
		t.Errorf("kvKey (key second) = %q %v", k, ok)
	}
	for _, bad := range [][]byte{nil, {0x0a, 9, 'x'}, {0x0a}, {0x10}, {0x17}} {
		if k, ok := kvKey(bad); ok {
			t.Errorf("kvKey(%v) = %q, want none", bad, k)
		}
	}
}

func TestResourceOf(t *testing.T) {
	for key, want := range map[string]string{
		"/registry/secrets/default/a":               "secrets",
		"/registry/namespaces/default":              "namespaces",
		"/registry/skiff.dev/workloads/default/web": "skiff.dev/workloads",
		"/registry/skiff.dev/nodes/n1":              "skiff.dev/nodes",
		"/registry/x":                               "other",
		"compact_rev_key":                           "other",
		"/registryx/secrets/a/b":                    "other",
	} {
		if got := resourceOf(key, "/registry"); got != want {
			t.Errorf("resourceOf(%q) = %q, want %q", key, got, want)
		}
	}
}

// TestDeleteOnlySnapshots: in a shared directory, delete refuses a file
// that is neither a snapshot nor named as one.
func TestDeleteOnlySnapshots(t *testing.T) {
	dir := t.TempDir()
	s := &Store{Dir: dir}
	other := filepath.Join(dir, "backup.tar")
	if err := os.WriteFile(other, []byte("not a snapshot"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("backup.tar"); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete of another file: %v, want refused", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("the other file: %v", err)
	}
	damaged := filepath.Join(dir, "before-node-1760000000")
	if err := os.WriteFile(damaged, []byte("truncated"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("before-node-1760000000"); err != nil {
		t.Errorf("delete of a damaged snapshot: %v", err)
	}
}
