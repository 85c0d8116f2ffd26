package image

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// maxMountData is the most the kernel takes as a mount's options: one
// page, including the terminating NUL.
var maxMountData = os.Getpagesize() - 1

// Mount mounts a container's root file system at dir/rootfs: an overlay of
// layers (bottom first, as Image.Layers), with the container's changes in
// dir/upper (and overlayfs's scratch space in dir/work). The upper layer
// is made anew on every Mount, so a restarted container starts from the
// image again. If dir/rootfs is mounted already, it is unmounted first.
func Mount(layers []string, dir string) error {
	if len(layers) == 0 {
		return fmt.Errorf("mount %q: image has no layers", dir)
	}
	rootfs, upper, work := mountDirs(dir)
	if err := unmountAll(rootfs); err != nil {
		return fmt.Errorf("mount %q: %w", dir, err)
	}
	for _, d := range []string{rootfs, upper, work} {
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("mount %q: %w", dir, err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("mount %q: %w", dir, err)
	}
	for _, d := range []string{rootfs, upper, work} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return fmt.Errorf("mount %q: %w", dir, err)
		}
	}
	// overlayfs shows upper's root as "/"; give it the image's.
	if err := copyOwnerMode(layers[len(layers)-1], upper); err != nil {
		return fmt.Errorf("mount %q: %w", dir, err)
	}
	data, err := overlayOptions(layers, upper, work)
	if err != nil {
		return fmt.Errorf("mount %q: %w", dir, err)
	}
	if err := unix.Mount("overlay", rootfs, "overlay", 0, data); err != nil {
		return fmt.Errorf("mount %q: overlay of %d layers: %w", dir, len(layers), err)
	}
	return nil
}

// Unmount unmounts dir/rootfs, if mounted, and removes dir.
func Unmount(dir string) error {
	rootfs, _, _ := mountDirs(dir)
	if err := unmountAll(rootfs); err != nil {
		return fmt.Errorf("unmount %q: %w", dir, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("unmount %q: %w", dir, err)
	}
	return nil
}

func mountDirs(dir string) (rootfs, upper, work string) {
	return filepath.Join(dir, "rootfs"), filepath.Join(dir, "upper"), filepath.Join(dir, "work")
}

// unmountAll unmounts everything mounted at path, which is then no mount
// point (or does not exist).
func unmountAll(path string) error {
	for range 16 {
		err := unix.Unmount(path, unix.UMOUNT_NOFOLLOW)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil // not a mount point
		}
		if err != nil {
			return fmt.Errorf("unmount %q: %w", path, err)
		}
	}
	return fmt.Errorf("unmount %q: still mounted", path)
}

// overlayOptions returns the overlay mount options; lowerdir lists the
// top layer first. A layer listed twice is kept only where it is highest:
// the lower copy would be hidden by the upper one anyway.
func overlayOptions(layers []string, upper, work string) (string, error) {
	seen := map[string]bool{}
	var lower []string
	for i := len(layers) - 1; i >= 0; i-- {
		if !seen[layers[i]] {
			seen[layers[i]] = true
			lower = append(lower, layers[i])
		}
	}
	for _, p := range append(lower, upper, work) {
		if strings.ContainsAny(p, ":,") {
			return "", fmt.Errorf("path %q has ':' or ',', which overlay options cannot hold", p)
		}
	}
	data := "lowerdir=" + strings.Join(lower, ":") + ",upperdir=" + upper + ",workdir=" + work
	if len(data) > maxMountData {
		return "", fmt.Errorf("overlay options for %d layers are %d bytes, more than the kernel's limit of %d: too many layers or too long a store path",
			len(lower), len(data), maxMountData)
	}
	return data, nil
}

func copyOwnerMode(from, to string) error {
	var st unix.Stat_t
	if err := unix.Stat(from, &st); err != nil {
		return fmt.Errorf("stat %q: %w", from, err)
	}
	if err := unix.Chown(to, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("chown %q: %w", to, err)
	}
	if err := unix.Chmod(to, st.Mode&0o7777); err != nil {
		return fmt.Errorf("chmod %q: %w", to, err)
	}
	return nil
}
