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
	img, err := imagebuild.Busybox()
	if err != nil {
		return err
	}
	return imagebuild.WriteTarball(out, ref, img)
}
