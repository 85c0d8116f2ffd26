package nodeagent

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/nodeagent/bundle"
)

// mounts are the container's volumeMounts as bind mounts of the
// volumes' paths (paths, by name). ConfigMap and secret volumes are
// read-only. A subPath is opened inside its volume and pinned (pinSubPath).
func (v *volumeManager) mounts(inst *skiffv1alpha1.Instance, c *skiffv1alpha1.Container, paths map[string]string) ([]bundle.Mount, error) {
	var out []bundle.Mount
	for i, m := range c.VolumeMounts {
		vol := volumeNamed(inst, m.Name)
		root, ok := paths[m.Name]
		if vol == nil || !ok {
			return nil, fmt.Errorf("volumeMount %q: no volume %q", m.MountPath, m.Name)
		}
		projected := vol.ConfigMap != nil || vol.Secret != nil
		src := root
		if m.SubPath != "" {
			pin := filepath.Join(v.dir, string(inst.UID), subPathsDir, c.Name, strconv.Itoa(i))
			if err := pinSubPath(root, m.SubPath, pin, !projected); err != nil {
				return nil, fmt.Errorf("volumeMount %q: subPath %q: %w", m.MountPath, m.SubPath, err)
			}
			src = pin
		}
		out = append(out, bundle.Mount{Source: src, Destination: m.MountPath, ReadOnly: m.ReadOnly || projected})
	}
	// Parents before children, whatever the order listed, as containerd
	// sorts a container's mounts.
	slices.SortStableFunc(out, func(a, b bundle.Mount) int {
		return cmp.Compare(depth(a.Destination), depth(b.Destination))
	})
	return out, nil
}

// subPathsDir holds, in an Instance's volumes directory, the subPaths
// pinned for its containers: not a DNS label, so no volume's name.
const subPathsDir = ".subpaths"

func volumeNamed(inst *skiffv1alpha1.Instance, name string) *skiffv1alpha1.Volume {
	for i := range inst.Spec.Volumes {
		if inst.Spec.Volumes[i].Name == name {
			return &inst.Spec.Volumes[i]
		}
	}
	return nil
}

// pinSubPath opens root/sub without ever leaving root (openat2 with
// RESOLVE_BENEATH: a symlink in the volume may lead anywhere inside it,
// none out, even one swapped in meanwhile by a container) and bind-mounts
// what it opened at pin, a path of the agent's that the runtime then
// mounts: what the container gets is what was checked, as the kubelet's
// safe subpaths do. With create, missing directories are made, each
// with its parent's mode and group (an emptyDir's 0777 and fsGroup).
func pinSubPath(root, sub, pin string, create bool) error {
	rootFD, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(rootFD)
	if create {
		if err := makeBeneath(rootFD, sub); err != nil {
			return err
		}
	}
	fd, err := openBeneath(rootFD, sub, unix.O_PATH)
	if err != nil {
		if errors.Is(err, unix.EXDEV) {
			return errors.New("leads out of its volume")
		}
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if err := unpin(pin); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(pin), 0o700); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		err = os.Mkdir(pin, 0o700)
	} else {
		err = os.WriteFile(pin, nil, 0o600)
	}
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if err := unix.Mount(fmt.Sprintf("/proc/self/fd/%d", fd), pin, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s: %w", pin, err)
	}
	return nil
}

// openBeneath opens path under dirFD, refusing to resolve out of it.
func openBeneath(dirFD int, path string, flags uint64) (int, error) {
	return unix.Openat2(dirFD, path, &unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Resolve: unix.RESOLVE_BENEATH})
}

// makeBeneath makes the missing directories of path under rootFD, each
// inside root whatever symlinks the path holds.
func makeBeneath(rootFD int, path string) error {
	parts := strings.Split(filepath.Clean(path), "/")
	for i := range parts {
		prefix := strings.Join(parts[:i+1], "/")
		fd, err := openBeneath(rootFD, prefix, unix.O_PATH)
		if err == nil {
			unix.Close(fd)
			continue
		}
		if !errors.Is(err, unix.ENOENT) {
			return err
		}
		parent := "."
		if i > 0 {
			parent = strings.Join(parts[:i], "/")
		}
		pfd, err := openBeneath(rootFD, parent, unix.O_RDONLY|unix.O_DIRECTORY)
		if err != nil {
			return err
		}
		err = mkdirLikeParent(pfd, parts[i])
		unix.Close(pfd)
		if err != nil {
			return err
		}
	}
	return nil
}

// mkdirLikeParent makes name in the directory pfd with pfd's mode and
// group.
func mkdirLikeParent(pfd int, name string) error {
	var pst unix.Stat_t
	if err := unix.Fstat(pfd, &pst); err != nil {
		return err
	}
	if err := unix.Mkdirat(pfd, name, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		return err
	}
	fd, err := unix.Openat2(pfd, name, &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS})
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Fchown(fd, -1, int(pst.Gid)); err != nil {
		return err
	}
	return unix.Fchmod(fd, pst.Mode&0o7777)
}

// unpin unmounts whatever is mounted at pin (a subPath bound there
// before), so that nothing under it is removed through the mount.
func unpin(pin string) error {
	for {
		err := unix.Unmount(pin, unix.MNT_DETACH)
		switch {
		case err == nil:
			continue
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil
		default:
			return fmt.Errorf("unmount %s: %w", pin, err)
		}
	}
}

// depth is the number of elements of an absolute path.
func depth(p string) int {
	p = filepath.Clean(p)
	if p == "/" {
		return 0
	}
	return strings.Count(p, "/")
}
