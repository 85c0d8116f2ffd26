package image

import (
	"archive/tar"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"skiff.dev/skiff/nodeagent/image/imagetest"
)

// storeImage adds img to s as ref, without a registry.
func storeImage(t *testing.T, s *Store, ref string, img v1.Image) *Image {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := s.add(t.Context(), r, r.Context().Digest("sha256:"+strings.Repeat("0", 64)).String(), img)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.image(ref, rec)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestMountAppliesWhiteoutsAndStartsFresh(t *testing.T) {
	requireRoot(t)
	s := newStore(t, t.TempDir())
	img := storeImage(t, s, "test/whiteouts", imagetest.Image(t, v1.Config{},
		imagetest.Layer(t,
			imagetest.Entry{Name: "a/", Type: tar.TypeDir},
			imagetest.Entry{Name: "a/file", Body: "deleted above"},
			imagetest.Entry{Name: "a/kept", Body: "kept"},
			imagetest.Entry{Name: "b/", Type: tar.TypeDir},
			imagetest.Entry{Name: "b/x", Body: "hidden above"},
		),
		imagetest.Layer(t,
			imagetest.Entry{Name: "a/.wh.file"},
			imagetest.Entry{Name: "b/", Type: tar.TypeDir},
			imagetest.Entry{Name: "b/.wh..wh..opq"},
			imagetest.Entry{Name: "b/y", Body: "y"},
		),
	))
	dir := filepath.Join(t.TempDir(), "c1")
	t.Cleanup(func() { Unmount(dir) })
	if err := Mount(img.Layers, dir); err != nil {
		t.Fatal(err)
	}
	rootfs := filepath.Join(dir, "rootfs")
	if _, err := os.Lstat(filepath.Join(rootfs, "a/file")); !os.IsNotExist(err) {
		t.Errorf("a/file: %v, want it deleted", err)
	}
	if b, err := os.ReadFile(filepath.Join(rootfs, "a/kept")); err != nil || string(b) != "kept" {
		t.Errorf("a/kept: %q, %v", b, err)
	}
	if got := names(t, filepath.Join(rootfs, "b")); !slices.Equal(got, []string{"y"}) {
		t.Errorf("b holds %q, want only the upper layer's y", got)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "scribble"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}

	if err := Mount(img.Layers, dir); err != nil {
		t.Fatalf("second Mount: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(rootfs, "scribble")); !os.IsNotExist(err) {
		t.Errorf("a file written in the first mount: %v, want it gone", err)
	}
	if n := mountsAt(t, rootfs); n != 1 {
		t.Errorf("%d mounts at rootfs, want 1", n)
	}

	if err := Unmount(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Errorf("dir after Unmount: %v, want it removed", err)
	}
	if n := mountsAt(t, rootfs); n != 0 {
		t.Errorf("%d mounts at rootfs after Unmount", n)
	}
	if err := Unmount(dir); err != nil {
		t.Errorf("Unmount of an unmounted dir: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(img.Layers[0], "a/file")); err != nil {
		t.Errorf("the layer lost a/file: %v", err)
	}
}

func TestMountGivesRootTheImageMode(t *testing.T) {
	requireRoot(t)
	s := newStore(t, t.TempDir())
	img := storeImage(t, s, "test/root", imagetest.Image(t, v1.Config{},
		imagetest.Layer(t, imagetest.Entry{Name: "f", Body: "f"})))
	dir := filepath.Join(t.TempDir(), "c")
	t.Cleanup(func() { Unmount(dir) })
	if err := Mount(img.Layers, dir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "rootfs"))
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("rootfs: %v, %v; want mode 0755", fi.Mode(), err)
	}
}

func TestOverlayOptions(t *testing.T) {
	got, err := overlayOptions([]string{"/s/1", "/s/2", "/s/1", "/s/3"}, "/c/upper", "/c/work")
	want := "lowerdir=/s/3:/s/1:/s/2,upperdir=/c/upper,workdir=/c/work"
	if err != nil || got != want {
		t.Errorf("options = %q, %v; want %q", got, err, want)
	}
	var many []string
	for i := range 100 {
		many = append(many, filepath.Join("/var/lib/skiff/store/layers", strings.Repeat("a", 62)+string(rune('0'+i/10))+string(rune('0'+i%10))))
	}
	if _, err := overlayOptions(many, "/c/upper", "/c/work"); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("options for 100 layers: %v, want an error about the limit", err)
	}
	if _, err := overlayOptions([]string{"/a:b"}, "/u", "/w"); err == nil {
		t.Error("a layer path with ':' was accepted")
	}
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, e := range es {
		n = append(n, e.Name())
	}
	return n
}

// mountsAt counts the mounts at path in this process's mount table.
func mountsAt(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) > 4 && f[4] == path {
			n++
		}
	}
	return n
}
