// Package imagebuild builds OCI images from a list of files: the busybox
// image `make run` imports for the samples, and the images tests push.
package imagebuild

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
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
func Layer(entries ...Entry) (v1.Layer, error) {
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
			return nil, fmt.Errorf("layer entry %q: %w", e.Name, err)
		}
		if _, err := io.WriteString(tw, e.Body); err != nil {
			return nil, fmt.Errorf("layer entry %q: %w", e.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	})
}

// Image returns a linux image of this machine's architecture made of
// layers (bottom first), configured by cfg.
func Image(cfg v1.Config, layers ...v1.Layer) (v1.Image, error) {
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Config = "linux", runtime.GOARCH, cfg
	return mutate.ConfigFile(img, cf)
}

// BusyboxApplets are the commands linked to busybox in its image.
var BusyboxApplets = []string{
	"sh", "sleep", "echo", "cat", "env", "id", "ls", "grep", "pwd", "true", "false", "wc", "head",
	"httpd", "wget", "hostname", "ps", "top", "nc", "ip", "ping", "date", "uname", "mkdir", "rm", "tail",
}

// BusyboxLayer returns the busybox layer: bin, a static busybox binary,
// with its applets, and /etc/passwd and /etc/group with root and app (uid
// and gid 1000). The same binary always makes the same layer.
func BusyboxLayer(bin []byte) (v1.Layer, error) {
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
		{Name: "www/", Type: tar.TypeDir},
		{Name: "www/index.html", Body: "hello from skiff\n"},
	}
	for _, a := range BusyboxApplets {
		entries = append(entries, Entry{Name: "bin/" + a, Type: tar.TypeSymlink, Link: "busybox", Mode: 0o777})
	}
	return Layer(entries...)
}

// ErrNoStaticBusybox: there is no statically linked busybox on $PATH
// (Debian: apt-get install busybox-static).
var ErrNoStaticBusybox = errors.New("no static busybox on $PATH (Debian: apt-get install busybox-static)")

// StaticBusybox reads the host's busybox binary, which must be statically
// linked to run in an image without libc.
func StaticBusybox() ([]byte, error) {
	p, err := exec.LookPath("busybox")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoStaticBusybox, err)
	}
	f, err := elf.Open(p)
	if err != nil {
		return nil, fmt.Errorf("busybox %q: %w", p, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return nil, fmt.Errorf("%w: %q is dynamically linked", ErrNoStaticBusybox, p)
		}
	}
	return os.ReadFile(p)
}

// Busybox is the image of the host's static busybox the samples run
// (`make run` writes it as skiff.local/busybox:latest): the busybox layer,
// sh as its command, /bin on the PATH.
func Busybox() (v1.Image, error) {
	bin, err := StaticBusybox()
	if err != nil {
		return nil, err
	}
	layer, err := BusyboxLayer(bin)
	if err != nil {
		return nil, err
	}
	return Image(v1.Config{Cmd: []string{"sh"}, Env: []string{"PATH=/bin"}}, layer)
}

// WriteTarball writes img as a tarball under ref at path (as `docker save`
// does; what the agent imports from its images directory), through a
// temporary file so that an importer never reads half of it.
func WriteTarball(path, ref string, img v1.Image) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("image reference %q: %w", ref, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := tarball.WriteToFile(tmp, tag, img); err != nil {
		return fmt.Errorf("writing %q: %w", path, err)
	}
	return os.Rename(tmp, path)
}
