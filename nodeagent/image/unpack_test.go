package image

import (
	"archive/tar"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"skiff.dev/skiff/nodeagent/image/imagetest"
)

// unpackLayer unpacks a layer of entries into a new store and returns the
// layer's directory.
func unpackLayer(t *testing.T, s *Store, entries ...imagetest.Entry) (string, error) {
	t.Helper()
	d, err := s.ensureLayer(t.Context(), imagetest.Layer(t, entries...))
	return s.layerPath(d), err
}

func TestUnpackEntries(t *testing.T) {
	requireRoot(t)
	s := newStore(t, t.TempDir())
	dir, err := unpackLayer(t, s,
		imagetest.Entry{Name: "./", Type: tar.TypeDir, Mode: 0o755},
		imagetest.Entry{Name: "d/", Type: tar.TypeDir, Mode: 0o750, UID: 1000, GID: 1000},
		imagetest.Entry{Name: "d/f", Mode: 0o4755, UID: 1000, GID: 1001, Body: "hi"},
		imagetest.Entry{Name: "d/s", Type: tar.TypeSymlink, Link: "f"},
		imagetest.Entry{Name: "d/h", Type: tar.TypeLink, Link: "d/f"},
		imagetest.Entry{Name: "p", Type: tar.TypeFifo, Mode: 0o600},
		imagetest.Entry{Name: "null", Type: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3},
		imagetest.Entry{Name: "/implicit/deep/f", Body: "deep"},
		imagetest.Entry{Name: "r", Body: "first"},
		imagetest.Entry{Name: "r", Body: "second"},
		imagetest.Entry{Name: "x/", Type: tar.TypeDir},
		imagetest.Entry{Name: "x/y", Body: "y"},
		imagetest.Entry{Name: "x", Body: "now a file"},
		imagetest.Entry{Name: ".wh.gone"},
		imagetest.Entry{Name: "o/.wh..wh..opq"},
	)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		mode     os.FileMode
		uid, gid uint32
		body     string
	}{
		{name: ".", mode: os.ModeDir | 0o755},
		{name: "d", mode: os.ModeDir | 0o750, uid: 1000, gid: 1000},
		{name: "d/f", mode: os.ModeSetuid | 0o755, uid: 1000, gid: 1001, body: "hi"},
		{name: "d/s", mode: os.ModeSymlink | 0o777},
		{name: "p", mode: os.ModeNamedPipe | 0o600},
		{name: "null", mode: os.ModeDevice | os.ModeCharDevice | 0o666},
		{name: "implicit/deep/f", mode: 0o644, body: "deep"},
		{name: "r", mode: 0o644, body: "second"},
		{name: "x", mode: 0o644, body: "now a file"},
	} {
		p := filepath.Join(dir, tc.name)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode() != tc.mode || st.Uid != tc.uid || st.Gid != tc.gid {
			t.Errorf("%s: mode %v owner %d:%d, want %v %d:%d", tc.name, fi.Mode(), st.Uid, st.Gid, tc.mode, tc.uid, tc.gid)
		}
		if fi.ModTime().Unix() != imagetest.ModTime {
			t.Errorf("%s: mtime %v, want the entry's", tc.name, fi.ModTime())
		}
		if tc.body != "" {
			if b, err := os.ReadFile(p); err != nil || string(b) != tc.body {
				t.Errorf("%s: %q, %v; want %q", tc.name, b, err, tc.body)
			}
		}
	}
	var f, h unix.Stat_t
	if unix.Lstat(filepath.Join(dir, "d/f"), &f) != nil || unix.Lstat(filepath.Join(dir, "d/h"), &h) != nil || f.Ino != h.Ino {
		t.Errorf("d/h is not a hard link of d/f")
	}
	var null unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "null"), &null); err != nil || null.Rdev != unix.Mkdev(1, 3) {
		t.Errorf("null: rdev %x, %v; want 1:3", null.Rdev, err)
	}
	var gone unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "gone"), &gone); err != nil || gone.Mode&unix.S_IFMT != unix.S_IFCHR || gone.Rdev != 0 {
		t.Errorf("whiteout gone: mode %o rdev %x, %v; want a 0:0 character device", gone.Mode, gone.Rdev, err)
	}
	if _, err := os.Lstat(filepath.Join(dir, ".wh.gone")); !os.IsNotExist(err) {
		t.Errorf(".wh.gone kept: %v", err)
	}
	buf := make([]byte, 8)
	if n, err := unix.Lgetxattr(filepath.Join(dir, "o"), opaqueXattr, buf); err != nil || string(buf[:n]) != "y" {
		t.Errorf("o: %s=%q, %v; want y", opaqueXattr, buf[:n], err)
	}
}

func TestUnpackRejectsEscapes(t *testing.T) {
	requireRoot(t)
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		entries []imagetest.Entry
	}{
		{"dot-dot", []imagetest.Entry{{Name: "../evil", Body: "x"}}},
		{"dot-dot inside", []imagetest.Entry{{Name: "a/../../evil", Body: "x"}}},
		{"through an absolute symlink", []imagetest.Entry{
			{Name: "l", Type: tar.TypeSymlink, Link: outside},
			{Name: "l/evil", Body: "x"},
		}},
		{"through a symlink to root", []imagetest.Entry{
			{Name: "l", Type: tar.TypeSymlink, Link: "/"},
			{Name: "l" + outside + "/evil", Body: "x"},
		}},
		{"through a relative symlink", []imagetest.Entry{
			{Name: "l", Type: tar.TypeSymlink, Link: "../../../../../../../../.." + outside},
			{Name: "l/evil", Body: "x"},
		}},
		{"hard link out", []imagetest.Entry{{Name: "h", Type: tar.TypeLink, Link: "../../../../../../../.." + outside + "/secret"}}},
		{"hard link through a symlink", []imagetest.Entry{
			{Name: "l", Type: tar.TypeSymlink, Link: outside},
			{Name: "h", Type: tar.TypeLink, Link: "l/secret"},
		}},
		// A whiteout of ".." removed the layer's parent: the layers being
		// unpacked beside it.
		{"whiteout of the parent", []imagetest.Entry{{Name: ".wh..."}}},
		{"whiteout of the parent below", []imagetest.Entry{{Name: "a/", Type: tar.TypeDir}, {Name: "a/.wh..."}}},
		{"whiteout of the directory itself", []imagetest.Entry{{Name: "a/.wh.."}}},
		{"empty name", []imagetest.Entry{{Name: ""}}},
		{"a host disk", []imagetest.Entry{{Name: "sda", Type: tar.TypeBlock, Mode: 0o666, Devmajor: 8}}},
		{"kernel memory", []imagetest.Entry{{Name: "kmem", Type: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 2}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			s := newStore(t, root)
			// Another layer being unpacked at the same time.
			sibling := filepath.Join(s.path("tmp"), "layer-sibling")
			if err := os.MkdirAll(sibling, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(sibling, "f"), []byte("s"), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := unpackLayer(t, s, tc.entries...)
			if err == nil {
				t.Fatal("unpack succeeded")
			}
			last := tc.entries[len(tc.entries)-1].Name
			if !strings.Contains(err.Error(), last) {
				t.Errorf("error %q does not name the entry %q", err, last)
			}
			if _, err := os.Lstat(filepath.Join(outside, "evil")); !os.IsNotExist(err) {
				t.Errorf("wrote outside the layer: %v", err)
			}
			for _, p := range []string{"evil", "tmp/evil"} {
				if _, err := os.Lstat(filepath.Join(root, p)); !os.IsNotExist(err) {
					t.Errorf("wrote %s: %v", p, err)
				}
			}
			if layers, _ := os.ReadDir(s.path("layers")); len(layers) != 0 {
				t.Errorf("layers after a failed unpack: %v", layers)
			}
			if b, err := os.ReadFile(filepath.Join(outside, "secret")); err != nil || string(b) != "s" {
				t.Errorf("secret changed: %q, %v", b, err)
			}
			if _, err := os.Stat(filepath.Join(sibling, "f")); err != nil {
				t.Errorf("the layer beside it: %v", err)
			}
		})
	}
}

func TestUnpackChecksDiffID(t *testing.T) {
	requireRoot(t)
	l := imagetest.Layer(t, imagetest.Entry{Name: "f", Body: "x"})
	wrong := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0", 64)}
	err := unpackVerified(t.Context(), t.TempDir(), l, wrong)
	if err == nil || !strings.Contains(err.Error(), "not the diff id") {
		t.Errorf("unpack with a wrong diff id: %v", err)
	}
}

func TestAbsoluteNameStaysInside(t *testing.T) {
	requireRoot(t)
	s := newStore(t, t.TempDir())
	dir, err := unpackLayer(t, s, imagetest.Entry{Name: "/etc/abs", Body: "in"})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "etc/abs")); err != nil || string(b) != "in" {
		t.Errorf("etc/abs in the layer: %q, %v", b, err)
	}
}

// FuzzUnpackNames unpacks one entry of any name, as a file, a directory,
// a whiteout, a symlink and a hard link, into a directory beside another:
// whatever the name, nothing outside the layer's directory changes.
func FuzzUnpackNames(f *testing.F) {
	for _, seed := range []string{"a", "./a", "/a", "..", "../a", "a/../../b", ".wh...", "a/.wh...", ".wh..", ".wh.", ".wh..wh..opq",
		"a/.wh..wh..opq", "", ".", "/", "//..", "a\x00b", "\\..", ".wh.a/b", "a/./../..", strings.Repeat("a/", 200) + ".."} {
		f.Add(seed, seed)
	}
	f.Fuzz(func(t *testing.T, name, link string) {
		if os.Geteuid() != 0 {
			t.Skip("needs root")
		}
		parent := t.TempDir()
		beside := filepath.Join(parent, "beside")
		if err := os.WriteFile(beside, []byte("s"), 0o600); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(parent, "layer")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, typ := range []byte{tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink} {
			var b strings.Builder
			tw := tar.NewWriter(&b)
			hdr := &tar.Header{Name: name, Typeflag: typ, Mode: 0o644, Linkname: link}
			if err := tw.WriteHeader(hdr); err != nil {
				return // not a name tar can hold
			}
			if err := tw.Close(); err != nil {
				return
			}
			_ = unpack(t.Context(), dir, strings.NewReader(b.String()))
			entries, err := os.ReadDir(parent)
			if err != nil || len(entries) != 2 {
				t.Fatalf("entry %q (type %c, link %q): the layer's parent holds %v, %v", name, typ, link, entries, err)
			}
			if got, err := os.ReadFile(beside); err != nil || string(got) != "s" {
				t.Fatalf("entry %q (type %c, link %q): the file beside the layer: %q, %v", name, typ, link, got, err)
			}
		}
	})
}
