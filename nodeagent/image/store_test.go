package image

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"skiff.dev/skiff/nodeagent/image/imagetest"
)

// requireRoot skips tests that unpack layers: that sets owners and makes
// device nodes.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

func newStore(t *testing.T, root string, insecure ...string) *Store {
	t.Helper()
	s, err := NewStore(root, Options{InsecureRegistries: insecure})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// countUnpacks makes s count its layer unpacks by diff id.
func countUnpacks(s *Store) func() map[v1.Hash]int {
	var mu sync.Mutex
	n := map[v1.Hash]int{}
	s.onUnpack = func(d v1.Hash) {
		mu.Lock()
		defer mu.Unlock()
		n[d]++
	}
	return func() map[v1.Hash]int {
		mu.Lock()
		defer mu.Unlock()
		return n
	}
}

func TestParseNormalises(t *testing.T) {
	s := newStore(t, t.TempDir(), "127.0.0.1:5000")
	for ref, want := range map[string]string{
		"busybox":                     "index.docker.io/library/busybox:latest",
		"docker.io/library/busybox:1": "index.docker.io/library/busybox:1",
		"ghcr.io/a/b":                 "ghcr.io/a/b:latest",
		"127.0.0.1:5000/app:v1":       "127.0.0.1:5000/app:v1",
	} {
		r, err := s.parse(ref)
		if err != nil {
			t.Fatalf("parse %q: %v", ref, err)
		}
		if r.Name() != want {
			t.Errorf("parse %q = %q, want %q", ref, r.Name(), want)
		}
	}
	r, _ := s.parse("127.0.0.1:5000/app")
	if got := r.Context().Scheme(); got != "http" {
		t.Errorf("insecure registry scheme = %q, want http", got)
	}
	if _, err := s.parse("Bad//Ref"); err == nil || !strings.Contains(err.Error(), "Bad//Ref") {
		t.Errorf("parse of a bad reference: %v, want an error naming it", err)
	}
}

func TestEnsurePullsOnceAndKeepsAcrossRestart(t *testing.T) {
	requireRoot(t)
	srv := imagetest.RegistryServer(t, nil)
	host := imagetest.Host(srv)
	cfg := v1.Config{
		Entrypoint: []string{"/bin/sh", "-c"},
		Cmd:        []string{"echo hi"},
		Env:        []string{"A=1", "PATH=/bin"},
		WorkingDir: "/home/app",
		User:       "app",
	}
	pushed := imagetest.Busybox(t, cfg)
	ref := imagetest.Push(t, host, "app:v1", pushed)
	digest, err := pushed.Digest()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "store")
	s := newStore(t, root, host)

	img, err := s.Ensure(t.Context(), ref, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img.Ref != ref || img.ID != host+"/app@"+digest.String() {
		t.Errorf("Ref, ID = %q, %q; want %q, %q", img.Ref, img.ID, ref, host+"/app@"+digest.String())
	}
	if img.Config.WorkingDir != cfg.WorkingDir || img.Config.User != cfg.User ||
		strings.Join(img.Config.Entrypoint, " ") != "/bin/sh -c" || strings.Join(img.Config.Env, ",") != "A=1,PATH=/bin" {
		t.Errorf("Config = %+v, want %+v", img.Config, cfg)
	}
	if len(img.Layers) != 1 {
		t.Fatalf("Layers = %q, want 1", img.Layers)
	}
	if fi, err := os.Lstat(filepath.Join(img.Layers[0], "bin/sh")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("bin/sh in the layer: %v, %v; want a symlink", fi, err)
	}
	if img.PullDuration <= 0 {
		t.Errorf("PullDuration = %v, want > 0 for a pull", img.PullDuration)
	}

	srv.Close() // from now on, any pull fails
	again, err := s.Ensure(t.Context(), ref, PullOptions{})
	if err != nil {
		t.Fatalf("Ensure with the image in the store and no registry: %v", err)
	}
	restarted, err := newStore(t, root, host).Ensure(t.Context(), ref, PullOptions{})
	if err != nil {
		t.Fatalf("Ensure after a restart with no registry: %v", err)
	}
	for _, got := range []*Image{again, restarted} {
		if got.PullDuration != 0 || got.ID != img.ID || got.Layers[0] != img.Layers[0] || got.Config.User != "app" {
			t.Errorf("Ensure from the store = %+v, want %+v with PullDuration 0", got, img)
		}
	}
}

func TestEnsureUnpacksSharedLayerOnce(t *testing.T) {
	requireRoot(t)
	host := imagetest.Registry(t)
	base := imagetest.BusyboxLayer(t)
	one := imagetest.Push(t, host, "one", imagetest.Image(t, v1.Config{}, base, imagetest.Layer(t, imagetest.Entry{Name: "one", Body: "1"})))
	two := imagetest.Push(t, host, "two", imagetest.Image(t, v1.Config{}, base, imagetest.Layer(t, imagetest.Entry{Name: "two", Body: "2"})))
	s := newStore(t, t.TempDir(), host)
	unpacks := countUnpacks(s)

	imgs := make([]*Image, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, ref := range []string{one, two} {
		wg.Go(func() { imgs[i], errs[i] = s.Ensure(t.Context(), ref, PullOptions{}) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if imgs[0].Layers[0] != imgs[1].Layers[0] {
		t.Errorf("base layers %q and %q differ", imgs[0].Layers[0], imgs[1].Layers[0])
	}
	got := unpacks()
	if len(got) != 3 {
		t.Errorf("unpacked %d layers, want 3: %v", len(got), got)
	}
	for d, n := range got {
		if n != 1 {
			t.Errorf("layer %s unpacked %d times", d, n)
		}
	}
}

func TestEnsureConcurrentPullsOnce(t *testing.T) {
	requireRoot(t)
	var manifestGets atomic.Int32
	srv := imagetest.RegistryServer(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/manifests/") && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
				manifestGets.Add(1)
			}
			h.ServeHTTP(w, r)
		})
	})
	host := imagetest.Host(srv)
	ref := imagetest.Push(t, host, "app", imagetest.Busybox(t, v1.Config{}))
	manifestGets.Store(0)
	s := newStore(t, t.TempDir(), host)
	unpacks := countUnpacks(s)

	const n = 8
	imgs := make([]*Image, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { imgs[i], errs[i] = s.Ensure(t.Context(), ref, PullOptions{}) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if got := manifestGets.Load(); got != 1 {
		t.Errorf("manifest fetched %d times, want 1", got)
	}
	pulled := 0
	for _, img := range imgs {
		if img.ID != imgs[0].ID || img.Layers[0] != imgs[0].Layers[0] {
			t.Errorf("Ensure results differ: %+v and %+v", img, imgs[0])
		}
		if img.PullDuration > 0 {
			pulled++
		}
	}
	if pulled != 1 {
		t.Errorf("%d results report a pull, want 1", pulled)
	}
	if got := unpacks(); len(got) != 1 {
		t.Errorf("unpacks = %v, want one layer once", got)
	}
}

func TestEnsureErrors(t *testing.T) {
	srv := imagetest.RegistryServer(t, nil)
	host := imagetest.Host(srv)
	closed := imagetest.RegistryServer(t, nil)
	closed.Close()
	imagetest.Push(t, host, "app:v1", imagetest.Image(t, v1.Config{}, imagetest.Layer(t, imagetest.Entry{Name: "f"})))

	for _, tc := range []struct {
		name     string
		ref      string
		insecure []string
		want     []string
	}{
		{"missing tag", host + "/app:missing", []string{host}, []string{"MANIFEST_UNKNOWN"}},
		{"missing repository", host + "/nothing:v1", []string{host}, []string{"NAME_UNKNOWN"}},
		{"https to an http registry", host + "/app:v1", nil, []string{"server gave HTTP response to HTTPS client", "refusing plain HTTP"}},
		{"connection refused", imagetest.Host(closed) + "/app:v1", []string{imagetest.Host(closed)}, []string{"connection refused"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t, t.TempDir(), tc.insecure...)
			_, err := s.Ensure(t.Context(), tc.ref, PullOptions{})
			if err == nil {
				t.Fatal("Ensure succeeded")
			}
			for _, w := range append(tc.want, tc.ref) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestEnsureErrorKeepsRegistryError(t *testing.T) {
	host := imagetest.Registry(t)
	s := newStore(t, t.TempDir(), host)
	_, err := s.Ensure(t.Context(), host+"/nothing", PullOptions{})
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusNotFound {
		t.Errorf("error %v: want a *transport.Error with status 404 inside", err)
	}
}

func TestEnsurePicksThisPlatform(t *testing.T) {
	requireRoot(t)
	host := imagetest.Registry(t)
	other := "arm64"
	if runtime.GOARCH == other {
		other = "amd64"
	}
	mine := imagetest.Image(t, v1.Config{Cmd: []string{"mine"}}, imagetest.Layer(t, imagetest.Entry{Name: "mine"}))
	theirs := imagetest.Image(t, v1.Config{Cmd: []string{"theirs"}}, imagetest.Layer(t, imagetest.Entry{Name: "theirs"}))
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: theirs, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: other}}},
		mutate.IndexAddendum{Add: mine, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}}},
	)
	ref, err := name.ParseReference(host+"/multi:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx, remote.WithContext(t.Context())); err != nil {
		t.Fatal(err)
	}
	digest, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}

	img, err := newStore(t, t.TempDir(), host).Ensure(t.Context(), ref.String(), PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(img.Config.Cmd) != 1 || img.Config.Cmd[0] != "mine" {
		t.Errorf("Config.Cmd = %q, want this platform's image", img.Config.Cmd)
	}
	if want := host + "/multi@" + digest.String(); img.ID != want {
		t.Errorf("ID = %q, want the index's %q", img.ID, want)
	}
}
