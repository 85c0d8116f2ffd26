package image

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"skiff.dev/skiff/nodeagent/image/imagetest"
)

func TestImportLayoutsAndTarballs(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	one := imagetest.Image(t, v1.Config{Cmd: []string{"one"}},
		imagetest.Layer(t, imagetest.Entry{Name: "one", Body: "1"}))
	two := imagetest.Image(t, v1.Config{Cmd: []string{"two"}},
		imagetest.Layer(t, imagetest.Entry{Name: "two", Body: "2"}))

	p, err := layout.Write(filepath.Join(dir, "one"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	err = p.AppendImage(one, layout.WithAnnotations(map[string]string{annotationRefName: "example.com/air/one:v1"}))
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag("example.com/air/two:v2")
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(filepath.Join(dir, "two.tar"), tag, two); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.tar")
	if err := os.WriteFile(bad, []byte("not a tarball"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "README"), []byte("ignored"), 0o644); err != nil {
		t.Fatal(err)
	}

	s := newStore(t, t.TempDir()) // no registry: Ensure must not pull
	unpacks := countUnpacks(s)
	refs, err := s.Import(t.Context(), dir)
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("Import error %v, want one naming %s", err, bad)
	}
	if err != nil && strings.Contains(err.Error(), "two.tar") {
		t.Errorf("Import error %v names a good file", err)
	}
	slices.Sort(refs)
	if want := []string{"example.com/air/one:v1", "example.com/air/two:v2"}; !slices.Equal(refs, want) {
		t.Errorf("imported %q, want %q", refs, want)
	}

	oneDigest, err := one.Digest()
	if err != nil {
		t.Fatal(err)
	}
	for ref, want := range map[string]string{"example.com/air/one:v1": "one", "example.com/air/two:v2": "two"} {
		img, err := s.Ensure(t.Context(), ref, PullOptions{})
		if err != nil {
			t.Fatalf("Ensure of imported %q: %v", ref, err)
		}
		if img.PullDuration != 0 || len(img.Config.Cmd) != 1 || img.Config.Cmd[0] != want || len(img.Layers) != 1 {
			t.Errorf("Ensure %q = %+v", ref, img)
		}
		if _, err := os.Stat(filepath.Join(img.Layers[0], want)); err != nil {
			t.Errorf("%q: layer lacks %s: %v", ref, want, err)
		}
	}
	if img, _ := s.Ensure(t.Context(), "example.com/air/one:v1", PullOptions{}); img.ID != "example.com/air/one@"+oneDigest.String() {
		t.Errorf("ID = %q, want the layout manifest's digest %s", img.ID, oneDigest)
	}

	// Importing again, as at every agent start, unpacks nothing.
	if _, err := s.Import(t.Context(), dir); err == nil {
		t.Error("second Import: no error for bad.tar")
	}
	for d, n := range unpacks() {
		if n != 1 {
			t.Errorf("layer %s unpacked %d times", d, n)
		}
	}
}

func TestImportNeedsNames(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	p, err := layout.Write(filepath.Join(dir, "unnamed"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(imagetest.Image(t, v1.Config{}, imagetest.Layer(t, imagetest.Entry{Name: "f"}))); err != nil {
		t.Fatal(err)
	}
	s := newStore(t, t.TempDir())
	refs, err := s.Import(t.Context(), dir)
	if len(refs) != 0 || err == nil || !strings.Contains(err.Error(), "unnamed") || !strings.Contains(err.Error(), annotationRefName) {
		t.Errorf("Import of an unnamed image = %q, %v; want an error naming the layout and the annotation", refs, err)
	}
}
