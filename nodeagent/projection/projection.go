// Package projection shows a ConfigMap's or Secret's keys as files in a
// volume directory and updates them atomically, the way the kubelet's
// AtomicWriter does. Inside the target directory:
//
//	dir/..<timestamp>.<random>/  the real files of one version
//	dir/..data -> ..<version>    swapped atomically (..data_tmp, then rename)
//	dir/<top> -> ..data/<top>    one symlink per top-level path element
//
// A reader of dir/<key> sees either the old or the new version, never a
// mix nor a missing file: a replaced version stays for keepReplaced, as a
// reader preempted between resolving ..data and opening the file may still
// need it, and is removed by the first Write after that, with any leftovers
// of a crash (..data_tmp, versions that never became current). Write is not
// safe for concurrent use on the same dir.
package projection

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const (
	dataLink     = "..data"
	tmpLink      = "..data_tmp"
	keepReplaced = time.Second
)

// File is the content and permission bits of one projected file (0 is
// 0000, as a Kubernetes mode of 0 is).
type File struct {
	Data []byte
	Mode os.FileMode
}

func (f File) perm() os.FileMode { return f.Mode.Perm() }

// Write makes dir show exactly files (relative, cleaned paths without a ".."
// element, the first not starting with ".."). It returns changed=false and
// touches nothing when the current version already has exactly these paths,
// contents, modes (and group). When gid >= 0 every file and directory it
// makes gets gid as its group. Entries of dir it does not manage are left
// alone, but a projected top-level name that collides with one is an error.
func Write(dir string, files map[string]File, gid int) (changed bool, err error) {
	tops := map[string]bool{}
	for p := range files {
		if err := validate(p); err != nil {
			return false, err
		}
		tops[strings.SplitN(p, "/", 2)[0]] = true
	}
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return false, err
		}
		if err := setMode(dir, 0o755, gid); err != nil {
			return false, err
		}
	}
	old, managed, err := survey(dir, tops)
	if err != nil {
		return false, err
	}
	if old != "" && sameKeys(managed, tops) && same(filepath.Join(dir, old), files, gid) {
		return false, nil
	}
	ver, err := writeVersion(dir, files, gid)
	if err != nil {
		return false, err
	}
	tmp := filepath.Join(dir, tmpLink)
	if err := os.Symlink(filepath.Base(ver), tmp); err != nil {
		os.RemoveAll(ver)
		return false, err
	}
	if err := os.Rename(tmp, filepath.Join(dir, dataLink)); err != nil {
		os.Remove(tmp)
		os.RemoveAll(ver)
		return false, err
	}
	return true, relink(dir, old, tops, managed)
}

// survey reads dir: the version ..data names (old, "" when none of
// ours) and the top-level symlinks into it (managed). On the way it
// removes a stale ..data_tmp and versions replaced at least keepReplaced
// ago, and refuses a projected top-level name taken by something else.
func survey(dir string, tops map[string]bool) (old string, managed map[string]bool, err error) {
	old, _ = os.Readlink(filepath.Join(dir, dataLink))
	if !strings.HasPrefix(old, "..") || strings.ContainsRune(old, '/') || old == ".." || old == dataLink || old == tmpLink {
		old = "" // not one of ours: never follow it out of dir
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", nil, err
	}
	managed = map[string]bool{}
	for _, e := range entries {
		name, p := e.Name(), filepath.Join(dir, e.Name())
		switch {
		case name == dataLink || name == old:
		case strings.HasPrefix(name, ".."): // ..data_tmp, a replaced or orphan version
			if info, err := e.Info(); err == nil && info.IsDir() && time.Since(info.ModTime()) < keepReplaced {
				continue
			}
			if err := os.RemoveAll(p); err != nil {
				return "", nil, err
			}
		case isManaged(p, name):
			managed[name] = true
		case tops[name]:
			return "", nil, fmt.Errorf("projection: %s exists and is not managed by projection", p)
		}
	}
	return old, managed, nil
}

// writeVersion writes files into a new version directory of dir, whole
// before anyone may read it: made 0700, its modes and groups set once
// every file is written (so that the umask does not interfere either).
func writeVersion(dir string, files map[string]File, gid int) (ver string, err error) {
	ver, err = os.MkdirTemp(dir, ".."+time.Now().UTC().Format("2006_01_02_15_04_05."))
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(ver)
		}
	}()
	for p, f := range files {
		full := filepath.Join(ver, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return "", fmt.Errorf("projection: %s: %w", p, err)
		}
		if err := os.WriteFile(full, f.Data, 0o600); err != nil {
			return "", fmt.Errorf("projection: %s: %w", p, err)
		}
	}
	err = filepath.WalkDir(ver, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return setMode(p, 0o755, gid)
		}
		rel, _ := filepath.Rel(ver, p)
		return setMode(p, files[rel].perm(), gid)
	})
	return ver, err
}

// relink, once ..data names the new version, makes the top-level
// symlinks of the new paths, removes those of paths no longer projected,
// and stamps the replaced version (old) with the time it was replaced.
func relink(dir, old string, tops, managed map[string]bool) error {
	for top := range tops {
		if !managed[top] {
			if err := os.Symlink(filepath.Join(dataLink, top), filepath.Join(dir, top)); err != nil {
				return err
			}
		}
	}
	for name := range managed {
		if !tops[name] {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return err
			}
		}
	}
	if old != "" { // its mtime now says when it was replaced
		now := time.Now()
		if err := os.Chtimes(filepath.Join(dir, old), now, now); err != nil {
			return err
		}
	}
	return nil
}

func validate(p string) error {
	bad := p == "" || p == "." || filepath.IsAbs(p) || filepath.Clean(p) != p || strings.HasPrefix(p, "..")
	for _, el := range strings.Split(p, "/") {
		bad = bad || el == ".."
	}
	if bad {
		return fmt.Errorf("projection: invalid path %q: must be relative, clean, without \"..\" and not start with \"..\"", p)
	}
	return nil
}

func setMode(p string, mode os.FileMode, gid int) error {
	if gid >= 0 {
		if err := os.Chown(p, -1, gid); err != nil {
			return err
		}
	}
	return os.Chmod(p, mode)
}

// isManaged reports whether p is a symlink to ..data/name.
func isManaged(p, name string) bool {
	target, err := os.Readlink(p)
	return err == nil && target == filepath.Join(dataLink, name)
}

func sameKeys(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// same reports whether the version directory ver holds exactly files.
func same(ver string, files map[string]File, gid int) bool {
	n := 0
	err := filepath.WalkDir(ver, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); gid >= 0 && (!ok || int(st.Gid) != gid) {
			return fs.ErrInvalid
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(ver, p)
		f, ok := files[rel]
		if !ok || !info.Mode().IsRegular() || info.Mode().Perm() != f.perm() {
			return fs.ErrInvalid
		}
		data, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(data, f.Data) {
			return fs.ErrInvalid
		}
		n++
		return nil
	})
	return err == nil && n == len(files)
}
