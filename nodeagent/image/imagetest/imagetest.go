// Package imagetest builds images and serves registries for tests: images
// from a list of files, a busybox image made of the host's static busybox
// binary, and go-containerregistry's in-process registry, optionally
// behind basic or token authentication.
//
//	host := imagetest.Registry(t)
//	ref := imagetest.Push(t, host, "app", imagetest.Busybox(t, v1.Config{Cmd: []string{"sleep", "60"}}))
package imagetest

import (
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"skiff.dev/skiff/nodeagent/image/imagebuild"
)

// Entry is one entry of a layer.
type Entry = imagebuild.Entry

// ModTime is every entry's modification time in Unix seconds.
const ModTime = imagebuild.ModTime

// Layer returns a gzip-compressed layer of entries, in order.
func Layer(t testing.TB, entries ...Entry) v1.Layer {
	t.Helper()
	l, err := imagebuild.Layer(entries...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Image returns a linux image of this machine's architecture made of
// layers (bottom first), configured by cfg.
func Image(t testing.TB, cfg v1.Config, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := imagebuild.Image(cfg, layers...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// Busybox returns a one-layer image of the host's static busybox binary,
// configured by cfg. It skips the test if there is no static busybox on
// $PATH (Debian: apt-get install busybox-static).
func Busybox(t testing.TB, cfg v1.Config) v1.Image {
	t.Helper()
	return Image(t, cfg, BusyboxLayer(t))
}

// BusyboxLayer returns Busybox's layer (imagebuild.BusyboxLayer).
func BusyboxLayer(t testing.TB) v1.Layer {
	t.Helper()
	bin, err := imagebuild.StaticBusybox()
	if errors.Is(err, imagebuild.ErrNoStaticBusybox) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	l, err := imagebuild.BusyboxLayer(bin)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Registry serves an in-process registry on 127.0.0.1 over plain HTTP
// until the test ends, and returns its host:port.
func Registry(t testing.TB) string {
	t.Helper()
	return Host(RegistryServer(t, nil))
}

// RegistryServer serves an in-process registry, its handler wrapped by
// wrap if not nil (to count or fail requests), until the test ends or the
// server is closed.
func RegistryServer(t testing.TB, wrap func(http.Handler) http.Handler) *httptest.Server {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// Host returns the host:port a test server listens on.
func Host(srv *httptest.Server) string {
	return strings.TrimPrefix(srv.URL, "http://")
}

// Push pushes img to the registry at host (over plain HTTP) as repo, which
// may have a ":tag" (default latest), and returns the full reference
// host/repo:tag. Options add to the push's, e.g. remote.WithAuth for a
// registry behind BasicAuth or TokenAuth.
func Push(t testing.TB, host, repo string, img v1.Image, opts ...remote.Option) string {
	t.Helper()
	ref, err := name.ParseReference(host+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatalf("push %q: %v", repo, err)
	}
	if err := remote.Write(ref, img, append([]remote.Option{remote.WithContext(t.Context())}, opts...)...); err != nil {
		t.Fatalf("push %q: %v", ref, err)
	}
	return ref.Name()
}
