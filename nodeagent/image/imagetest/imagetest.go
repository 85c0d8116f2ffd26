// Package imagetest builds images and serves registries for tests: images
// from a list of files, a busybox image made of the host's static busybox
// binary, and go-containerregistry's in-process registry.
//
//	host := imagetest.Registry(t)
//	ref := imagetest.Push(t, host, "app", imagetest.Busybox(t, v1.Config{Cmd: []string{"sleep", "60"}}))
package imagetest

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Entry is one entry of a layer.
type Entry struct {
	// Name is the path in the layer, e.g. "etc/passwd" or "a/.wh.file".
	Name string
	// Type is a tar type flag; a regular file if zero.
	Type byte
	// Mode is the permission bits (with setuid, setgid, sticky); 0644 for
	// files and 0755 for directories if zero.
	Mode int64
	// Body is a regular file's contents.
	Body string
	// Link is a symlink's or hard link's target.
	Link string
	// UID and GID own the entry.
	UID, GID int
	// Devmajor and Devminor are a device's numbers.
	Devmajor, Devminor int64
}

// ModTime is every entry's modification time in Unix seconds
// (2024-01-01T00:00:00Z), so that the same entries always make the same
// layer.
const ModTime = 1704067200

// Layer returns a gzip-compressed layer of entries, in order.
func Layer(t testing.TB, entries ...Entry) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{
			Name: e.Name, Typeflag: e.Type, Mode: e.Mode, Linkname: e.Link,
			Uid: e.UID, Gid: e.GID, Devmajor: e.Devmajor, Devminor: e.Devminor,
			ModTime: time.Unix(ModTime, 0), Format: tar.FormatPAX,
		}
		if hdr.Typeflag == 0 {
			hdr.Typeflag = tar.TypeReg
		}
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = int64(len(e.Body))
		}
		if hdr.Mode == 0 {
			hdr.Mode = 0o644
			if hdr.Typeflag == tar.TypeDir {
				hdr.Mode = 0o755
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("layer entry %q: %v", e.Name, err)
		}
		if _, err := io.WriteString(tw, e.Body); err != nil {
			t.Fatalf("layer entry %q: %v", e.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatalf("layer: %v", err)
	}
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	})
	if err != nil {
		t.Fatalf("layer: %v", err)
	}
	return l
}

// Image returns a linux image of this machine's architecture made of
// layers (bottom first), configured by cfg.
func Image(t testing.TB, cfg v1.Config, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatalf("image: %v", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatalf("image: %v", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Config = "linux", runtime.GOARCH, cfg
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatalf("image: %v", err)
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

// busyboxApplets are the commands linked to busybox in its image.
var busyboxApplets = []string{
	"sh", "sleep", "echo", "cat", "env", "id", "ls", "grep", "pwd", "true", "false", "wc", "head",
}

// BusyboxLayer returns Busybox's layer: /bin/busybox and its applets, and
// /etc/passwd and /etc/group with root and app (uid and gid 1000). It is
// the same layer on every call, for images that share it.
func BusyboxLayer(t testing.TB) v1.Layer {
	t.Helper()
	bin := staticBusybox(t)
	entries := []Entry{
		{Name: "bin/", Type: tar.TypeDir},
		{Name: "bin/busybox", Mode: 0o755, Body: string(bin)},
		{Name: "etc/", Type: tar.TypeDir},
		{Name: "etc/passwd", Body: "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"},
		{Name: "etc/group", Body: "root:x:0:\napp:x:1000:\n"},
		{Name: "home/", Type: tar.TypeDir},
		{Name: "home/app/", Type: tar.TypeDir, UID: 1000, GID: 1000},
		{Name: "root/", Type: tar.TypeDir, Mode: 0o700},
		{Name: "tmp/", Type: tar.TypeDir, Mode: 0o1777},
	}
	for _, a := range busyboxApplets {
		entries = append(entries, Entry{Name: "bin/" + a, Type: tar.TypeSymlink, Link: "busybox", Mode: 0o777})
	}
	return Layer(t, entries...)
}

// staticBusybox reads the host's busybox binary, skipping the test unless
// it is statically linked (and so runs in an image without libc).
func staticBusybox(t testing.TB) []byte {
	t.Helper()
	p, err := exec.LookPath("busybox")
	if err != nil {
		t.Skipf("no busybox: %v", err)
	}
	f, err := elf.Open(p)
	if err != nil {
		t.Skipf("busybox %q: %v", p, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			t.Skipf("busybox %q is dynamically linked; install busybox-static", p)
		}
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("busybox: %v", err)
	}
	return b
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
// host/repo:tag.
func Push(t testing.TB, host, repo string, img v1.Image) string {
	t.Helper()
	ref, err := name.ParseReference(host+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatalf("push %q: %v", repo, err)
	}
	if err := remote.Write(ref, img, remote.WithContext(t.Context())); err != nil {
		t.Fatalf("push %q: %v", ref, err)
	}
	return ref.Name()
}
