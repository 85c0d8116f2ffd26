// Command busybox-image writes an image of the host's static busybox as a
// tarball the node agent imports at start (its <data-dir>/images), so that
// the samples run without a registry: `make run` calls it.
//
//	go run ./hack/busybox-image -o /var/lib/skiff/server/agent/images/busybox.tar
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"skiff.dev/skiff/nodeagent/image/imagebuild"
)

func main() {
	out := flag.String("o", "busybox.tar", "the tarball to write")
	ref := flag.String("ref", "skiff.local/busybox:latest", "the image's reference")
	flag.Parse()
	if err := write(*out, *ref); err != nil {
		fmt.Fprintln(os.Stderr, "busybox-image:", err)
		os.Exit(1)
	}
}

func write(out, ref string) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("-ref %q: %w", ref, err)
	}
	bin, err := imagebuild.StaticBusybox()
	if err != nil {
		return err
	}
	layer, err := imagebuild.BusyboxLayer(bin)
	if err != nil {
		return err
	}
	img, err := imagebuild.Image(v1.Config{Cmd: []string{"sh"}, Env: []string{"PATH=/bin"}}, layer)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o700); err != nil {
		return err
	}
	tmp := out + ".tmp"
	if err := tarball.WriteToFile(tmp, tag, img); err != nil {
		return fmt.Errorf("-o %q: %w", out, err)
	}
	return os.Rename(tmp, out)
}
