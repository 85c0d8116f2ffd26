package projection

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func mustWrite(t *testing.T, dir string, files map[string]File, gid int) bool {
	t.Helper()
	changed, err := Write(dir, files, gid)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	return changed
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func dataTarget(t *testing.T, dir string) string {
	t.Helper()
	target, err := os.Readlink(filepath.Join(dir, dataLink))
	if err != nil {
		t.Fatal(err)
	}
	return target
}

// versions lists the version directories in dir.
func versions(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "..") && e.Name() != dataLink {
			out = append(out, e.Name())
		}
	}
	return out
}

// age makes p look replaced (or, for an orphan, made) long ago.
func age(t *testing.T, p string) {
	t.Helper()
	long := time.Now().Add(-time.Hour)
	if err := os.Chtimes(p, long, long); err != nil {
		t.Fatal(err)
	}
}

func TestWriteUpdateRemove(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vol") // created by Write
	if !mustWrite(t, dir, map[string]File{"a": {Data: []byte("1")}, "b": {Data: []byte("2")}}, -1) {
		t.Fatal("first write: changed=false")
	}
	if got := read(t, filepath.Join(dir, "a")); got != "1" {
		t.Fatalf("a = %q", got)
	}
	if target, _ := os.Readlink(filepath.Join(dir, "a")); target != filepath.Join(dataLink, "a") {
		t.Fatalf("a -> %q", target)
	}
	first := dataTarget(t, dir)

	if mustWrite(t, dir, map[string]File{"a": {Data: []byte("1")}, "b": {Data: []byte("2")}}, -1) {
		t.Fatal("identical write: changed=true")
	}
	if got := dataTarget(t, dir); got != first {
		t.Fatalf("identical write moved ..data from %s to %s", first, got)
	}

	if !mustWrite(t, dir, map[string]File{"a": {Data: []byte("one")}}, -1) {
		t.Fatal("update: changed=false")
	}
	if got := read(t, filepath.Join(dir, "a")); got != "one" {
		t.Fatalf("a = %q after update", got)
	}
	if _, err := os.Lstat(filepath.Join(dir, "b")); !os.IsNotExist(err) {
		t.Fatalf("removed key b still there: %v", err)
	}
	// The replaced version stays for keepReplaced, for readers that resolved
	// ..data just before the swap; the first Write after that removes it.
	if v := versions(t, dir); len(v) != 2 {
		t.Fatalf("version dirs %v, want %s and the replaced %s", v, dataTarget(t, dir), first)
	}
	age(t, filepath.Join(dir, first))
	if mustWrite(t, dir, map[string]File{"a": {Data: []byte("one")}}, -1) {
		t.Fatal("identical write: changed=true")
	}
	if v := versions(t, dir); len(v) != 1 || v[0] != dataTarget(t, dir) {
		t.Fatalf("version dirs %v, want only %s", v, dataTarget(t, dir))
	}

	if !mustWrite(t, dir, map[string]File{}, -1) {
		t.Fatal("empty write: changed=false")
	}
	entries, _ := os.ReadDir(filepath.Join(dir, dataLink))
	if _, err := os.Lstat(filepath.Join(dir, "a")); !os.IsNotExist(err) || len(entries) != 0 {
		t.Fatalf("empty volume not empty: a: %v, ..data has %d entries", err, len(entries))
	}
}

func TestNestedAndModes(t *testing.T) {
	dir := t.TempDir()
	files := map[string]File{
		"conf/app.ini":     {Data: []byte("x=1"), Mode: 0o400},
		"conf/sub/log.ini": {Data: []byte("y=2"), Mode: 0o644},
		"top":              {Data: []byte("t"), Mode: 0o640},
	}
	mustWrite(t, dir, files, -1)
	for p, f := range files {
		if got := read(t, filepath.Join(dir, p)); got != string(f.Data) {
			t.Errorf("%s = %q", p, got)
		}
		info, err := os.Stat(filepath.Join(dir, p))
		if err != nil || info.Mode().Perm() != f.Mode {
			t.Errorf("%s mode %v (%v), want %v", p, info.Mode().Perm(), err, f.Mode)
		}
	}
	if info, err := os.Stat(filepath.Join(dir, "conf/sub")); err != nil || info.Mode().Perm() != 0o755 {
		t.Errorf("conf/sub: %v %v, want 0755", info.Mode().Perm(), err)
	}
	if target, _ := os.Readlink(filepath.Join(dir, "conf")); target != filepath.Join(dataLink, "conf") {
		t.Errorf("conf -> %q", target)
	}
	// A mode change alone is a change.
	files["top"] = File{Data: []byte("t"), Mode: 0o600}
	if !mustWrite(t, dir, files, -1) {
		t.Error("mode change: changed=false")
	}
}

func TestGid(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	dir := filepath.Join(t.TempDir(), "vol")
	files := map[string]File{"k": {Data: []byte("v")}, "d/k2": {Data: []byte("v2")}}
	mustWrite(t, dir, files, 1234)
	for _, p := range []string{"", "k", "d", "d/k2", dataLink} {
		info, err := os.Stat(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		if gid := info.Sys().(*syscall.Stat_t).Gid; gid != 1234 {
			t.Errorf("%q gid %d, want 1234", p, gid)
		}
	}
	if mustWrite(t, dir, files, 1234) {
		t.Error("identical write with same gid: changed=true")
	}
	if !mustWrite(t, dir, files, 4321) {
		t.Error("gid change: changed=false")
	}
}

func TestRefusesBadPaths(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"../x", "/abs", "a/../../x", "a//b", "..data", "", "."} {
		_, err := Write(dir, map[string]File{p: {Data: []byte("x")}}, -1)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", p)) {
			t.Errorf("path %q: err %v, want an error naming it", p, err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("refused write left %d entries", len(entries))
	}
}

func TestUnmanagedEntries(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "mine"), []byte("keep"), 0o644)
	mustWrite(t, dir, map[string]File{"k": {Data: []byte("v")}}, -1)
	mustWrite(t, dir, map[string]File{}, -1)
	if got := read(t, filepath.Join(dir, "mine")); got != "keep" {
		t.Fatalf("unmanaged file = %q", got)
	}
	if _, err := Write(dir, map[string]File{"mine": {Data: []byte("x")}}, -1); err == nil {
		t.Fatal("collision with an unmanaged file: no error")
	}
}

func TestRecoversFromCrash(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, dir, map[string]File{"k": {Data: []byte("v1")}}, -1)
	// A crash left a ..data_tmp symlink and an orphan version directory.
	os.Symlink("..orphan", filepath.Join(dir, tmpLink))
	os.Mkdir(filepath.Join(dir, "..orphan"), 0o755)
	os.WriteFile(filepath.Join(dir, "..orphan", "k"), []byte("half"), 0o644)
	age(t, filepath.Join(dir, "..orphan"))

	prev := dataTarget(t, dir)
	mustWrite(t, dir, map[string]File{"k": {Data: []byte("v2")}}, -1)
	if got := read(t, filepath.Join(dir, "k")); got != "v2" {
		t.Fatalf("k = %q", got)
	}
	for _, p := range []string{"..orphan", tmpLink} {
		if _, err := os.Lstat(filepath.Join(dir, p)); !os.IsNotExist(err) {
			t.Errorf("stale %s not removed: %v", p, err)
		}
	}
	// Leftovers are cleaned even when nothing changed.
	age(t, filepath.Join(dir, prev))
	os.Symlink("..orphan", filepath.Join(dir, tmpLink))
	if mustWrite(t, dir, map[string]File{"k": {Data: []byte("v2")}}, -1) {
		t.Error("identical write after crash: changed=true")
	}
	if v := versions(t, dir); len(v) != 1 || v[0] != dataTarget(t, dir) {
		t.Errorf("after recovery: version dirs %v, ..data -> %s", v, dataTarget(t, dir))
	}
}

func TestReadersNeverSeeMixedValues(t *testing.T) {
	dir := t.TempDir()
	const n = 200
	valid := map[string]bool{}
	for i := 1; i <= n; i++ {
		valid[fmt.Sprintf("v%d", i)] = true
	}
	mustWrite(t, dir, map[string]File{"key": {Data: []byte("v1")}}, -1)

	var done atomic.Bool
	var wg sync.WaitGroup
	var reads atomic.Int64
	errs := make(chan error, 4)
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !done.Load() {
				b, err := os.ReadFile(filepath.Join(dir, "key"))
				if err != nil || !valid[string(b)] {
					errs <- fmt.Errorf("read %q, %v", b, err)
					return
				}
				reads.Add(1)
			}
		}()
	}
	for i := 2; i <= n; i++ {
		mustWrite(t, dir, map[string]File{"key": {Data: []byte(fmt.Sprintf("v%d", i))}}, -1)
	}
	done.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := read(t, filepath.Join(dir, "key")); got != fmt.Sprintf("v%d", n) {
		t.Errorf("final value %q", got)
	}
	t.Logf("%d reads", reads.Load())
}
