package nodeagent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/nodeagent/bundle"
	"skiff.dev/skiff/nodeagent/projection"
)

// Volumes live under the agent's data directory, one directory per
// Instance (its UID) and one per volume in it: made before the first
// container starts, kept over container restarts, removed with the
// Instance. An emptyDir of medium Memory and every secret volume are a
// tmpfs mounted there (a Secret's files never reach the node's disk); a
// hostPath is the node's own path and is never removed. ConfigMap and
// secret volumes are projected as the kubelet projects them (a ..data
// symlink swapped atomically) and read again every refresh, so that an
// update reaches the files within a minute.

// volumesDir is where Instances' volumes live, under the data directory.
const volumesDir = "volumes"

// volumeRefresh is how often a configMap or secret volume is read again.
const volumeRefresh = 30 * time.Second

// errHostPathNotAllowed refuses a hostPath volume on a node that does
// not allow them.
var errHostPathNotAllowed = errors.New("hostPath volumes are not allowed on this node (agent --allow-host-paths)")

// volumeManager makes, refreshes, measures and removes Instances' volumes.
type volumeManager struct {
	// dir holds a directory per Instance UID.
	dir string
	// allowHostPaths lets Instances mount the node's paths.
	allowHostPaths bool
	// sources reads ConfigMaps and Secrets by name.
	sources client.Reader
	// refresh is how often projected volumes are read again.
	refresh time.Duration

	mu        sync.Mutex
	projected map[types.UID]time.Time
}

func newVolumeManager(dir string, allowHostPaths bool, sources client.Reader) *volumeManager {
	return &volumeManager{dir: dir, allowHostPaths: allowHostPaths, sources: sources, refresh: volumeRefresh, projected: map[types.UID]time.Time{}}
}

// volumeError is a volume that cannot be set up yet; the containers wait.
type volumeError struct {
	volume string
	err    error
}

func (e *volumeError) Error() string {
	return fmt.Sprintf("MountVolume.SetUp failed for volume %q: %v", e.volume, e.err)
}

func (e *volumeError) Unwrap() error { return e.err }

// setup makes every volume of the Instance, projecting its ConfigMaps
// and Secrets when they were not yet or their refresh is due, and
// returns each volume's path on the node by name. Once the volumes have
// been set up, what fails later (a refresh of a deleted ConfigMap) is a
// warning: the volume keeps its files.
func (v *volumeManager) setup(ctx context.Context, inst *skiffv1alpha1.Instance) (paths map[string]string, warning, err error) {
	if len(inst.Spec.Volumes) == 0 {
		return nil, nil, nil
	}
	var warnings []error
	v.mu.Lock()
	last, ok := v.projected[inst.UID]
	v.mu.Unlock()
	reproject := !ok || time.Since(last) >= v.refresh
	gid := fsGroup(inst)
	paths = make(map[string]string, len(inst.Spec.Volumes))
	for i := range inst.Spec.Volumes {
		vol := &inst.Spec.Volumes[i]
		dir := filepath.Join(v.dir, string(inst.UID), vol.Name)
		switch src := vol.VolumeSource; {
		case src.EmptyDir != nil:
			err = emptyDir(dir, src.EmptyDir, inst, gid)
		case src.HostPath != nil:
			dir, err = v.hostPath(src.HostPath)
		case src.ConfigMap != nil:
			err = v.configMap(ctx, inst.Namespace, dir, src.ConfigMap, gid, reproject)
		case src.Secret != nil:
			err = v.secret(ctx, inst.Namespace, dir, src.Secret, gid, reproject)
		default:
			err = errors.New("no volume source")
		}
		if err != nil {
			verr := &volumeError{volume: vol.Name, err: err}
			if !ok {
				return nil, nil, verr
			}
			// Set up before: the containers keep what they have (the
			// last files projected), as in Kubernetes; the error is told.
			warnings = append(warnings, verr)
			if vol.HostPath != nil {
				dir = vol.HostPath.Path
			}
		}
		paths[vol.Name] = dir
	}
	if warning = errors.Join(warnings...); warning != nil {
		return paths, warning, nil
	}
	if reproject {
		v.mu.Lock()
		v.projected[inst.UID] = time.Now()
		v.mu.Unlock()
	}
	return paths, nil, nil
}

// fsGroup is the Instance's fsGroup, or -1.
func fsGroup(inst *skiffv1alpha1.Instance) int {
	if sc := inst.Spec.SecurityContext; sc != nil && sc.FSGroup != nil {
		return int(*sc.FSGroup)
	}
	return -1
}

// emptyDir makes the directory, world-writable as the kubelet makes it
// (setgid and owned by the fsGroup when there is one); medium Memory
// mounts a tmpfs there, as large as the Instance's memory limit (its
// sizeLimit is enforced by eviction, as on disk).
func emptyDir(dir string, src *skiffv1alpha1.EmptyDirVolumeSource, inst *skiffv1alpha1.Instance, gid int) error {
	_, err := os.Lstat(dir)
	made := errors.Is(err, fs.ErrNotExist)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if src.Medium == skiffv1alpha1.StorageMediumMemory {
		mounted, err := isMountPoint(dir)
		if err != nil {
			return err
		}
		if !mounted {
			made = true
			opts := "mode=0777"
			if limit := memoryLimit(inst); limit > 0 {
				opts += fmt.Sprintf(",size=%d", limit)
			}
			if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
				return fmt.Errorf("mount tmpfs on %s: %w", dir, err)
			}
		}
	}
	if !made {
		// Its mode is the containers' now (a database's 0700 stays).
		return nil
	}
	return own(dir, 0o777, gid)
}

// own gives a volume's root its mode and, with an fsGroup, its group
// and the setgid bit, so that what the containers make there is the
// group's too.
func own(dir string, mode fs.FileMode, gid int) error {
	if gid >= 0 {
		if err := os.Chown(dir, -1, gid); err != nil {
			return err
		}
		mode |= fs.ModeSetgid
	}
	return os.Chmod(dir, mode)
}

// memoryLimit is the sum of the containers' memory limits, or 0 when one
// has none.
func memoryLimit(inst *skiffv1alpha1.Instance) int64 {
	var sum int64
	for _, c := range inst.Spec.Containers {
		q, ok := c.Resources.Limits[corev1.ResourceMemory]
		if !ok {
			return 0
		}
		sum += q.Value()
	}
	return sum
}

// hostPath checks (or makes) what its type says must be at the path:
// FileOrCreate makes the file, not its directory; no type makes a missing
// path a directory, as containerd makes a bind mount's source.
func (v *volumeManager) hostPath(src *skiffv1alpha1.HostPathVolumeSource) (string, error) {
	if !v.allowHostPaths {
		return "", errHostPathNotAllowed
	}
	var t skiffv1alpha1.HostPathType
	if src.Type != nil {
		t = *src.Type
	}
	p := src.Path
	fi, err := os.Stat(p)
	missing := errors.Is(err, fs.ErrNotExist)
	if err != nil && !missing {
		return "", err
	}
	switch t {
	case skiffv1alpha1.HostPathUnset:
		if missing {
			// As containerd does for a bind mount's missing source.
			return p, os.MkdirAll(p, 0o755)
		}
	case skiffv1alpha1.HostPathDirectoryOrCreate:
		if missing {
			return p, os.MkdirAll(p, 0o755)
		}
		fallthrough
	case skiffv1alpha1.HostPathDirectory:
		if missing || !fi.IsDir() {
			return "", fmt.Errorf("hostPath type check failed: %s is not a directory", p)
		}
	case skiffv1alpha1.HostPathFileOrCreate:
		if missing {
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return "", err
			}
			return p, f.Close()
		}
		fallthrough
	case skiffv1alpha1.HostPathFile:
		if missing || !fi.Mode().IsRegular() {
			return "", fmt.Errorf("hostPath type check failed: %s is not a file", p)
		}
	}
	return p, nil
}

// configMap projects the ConfigMap's keys (or items) into dir.
func (v *volumeManager) configMap(ctx context.Context, ns, dir string, src *skiffv1alpha1.ConfigMapVolumeSource, gid int, reproject bool) error {
	if !reproject && isProjected(dir) {
		return nil
	}
	var cm corev1.ConfigMap
	err := v.sources.Get(ctx, client.ObjectKey{Namespace: ns, Name: src.Name}, &cm)
	optional := src.Optional != nil && *src.Optional
	data := map[string][]byte{}
	switch {
	case apierrors.IsNotFound(err) && optional:
	case apierrors.IsNotFound(err):
		return fmt.Errorf("configmap %q not found", src.Name)
	case err != nil:
		return fmt.Errorf("configmap %s/%s: %w", ns, src.Name, err)
	default:
		for k, s := range cm.Data {
			data[k] = []byte(s)
		}
		for k, b := range cm.BinaryData {
			data[k] = b
		}
	}
	files, err := projectKeys(data, src.Items, src.DefaultMode, optional, gid, "configmap references non-existent config key")
	if err != nil {
		return err
	}
	return project(dir, files, gid)
}

// secret projects the Secret's keys (or items) into dir, a tmpfs.
func (v *volumeManager) secret(ctx context.Context, ns, dir string, src *skiffv1alpha1.SecretVolumeSource, gid int, reproject bool) error {
	if !reproject && isProjected(dir) {
		return nil
	}
	var s corev1.Secret
	err := v.sources.Get(ctx, client.ObjectKey{Namespace: ns, Name: src.SecretName}, &s)
	optional := src.Optional != nil && *src.Optional
	switch {
	case apierrors.IsNotFound(err) && optional:
	case apierrors.IsNotFound(err):
		return fmt.Errorf("secret %q not found", src.SecretName)
	case err != nil:
		return fmt.Errorf("secret %s/%s: %w", ns, src.SecretName, err)
	}
	files, err := projectKeys(s.Data, src.Items, src.DefaultMode, optional, gid, "references non-existent secret key")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	mounted, err := isMountPoint(dir)
	if err != nil {
		return err
	}
	if !mounted {
		if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
			return fmt.Errorf("mount tmpfs on %s: %w", dir, err)
		}
	}
	return project(dir, files, gid)
}

func project(dir string, files map[string]projection.File, gid int) error {
	if _, err := projection.Write(dir, files, gid); err != nil {
		return err
	}
	if gid >= 0 {
		return own(dir, 0o755, gid)
	}
	return nil
}

// isProjected reports whether dir already shows a version.
func isProjected(dir string) bool {
	_, err := os.Lstat(filepath.Join(dir, "..data"))
	return err == nil
}

// projectKeys are the files of data: every key, or the items' keys at
// their paths (a missing key is an error unless optional, missing says
// so), with their modes; with an fsGroup, owner- and group-readable.
func projectKeys(data map[string][]byte, items []skiffv1alpha1.KeyToPath, defaultMode *int32, optional bool, gid int, missing string) (map[string]projection.File, error) {
	mode := skiffv1alpha1.DefaultVolumeMode
	if defaultMode != nil {
		mode = *defaultMode
	}
	withGroup := func(m int32) fs.FileMode {
		if gid >= 0 {
			m |= 0o440 // as the kubelet's SetVolumeOwnership for a read-only volume
		}
		return fs.FileMode(m)
	}
	files := map[string]projection.File{}
	if len(items) == 0 {
		for k, d := range data {
			files[k] = projection.File{Data: d, Mode: withGroup(mode)}
		}
		return files, nil
	}
	for _, it := range items {
		d, ok := data[it.Key]
		if !ok {
			if optional {
				continue
			}
			return nil, fmt.Errorf("%s: %s", missing, it.Key)
		}
		m := mode
		if it.Mode != nil {
			m = *it.Mode
		}
		files[path.Clean(it.Path)] = projection.File{Data: d, Mode: withGroup(m)}
	}
	return files, nil
}

// isMountPoint reports whether dir is on another file system than its
// parent (a tmpfs the agent mounted there).
func isMountPoint(dir string) (bool, error) {
	var st, parent unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return false, err
	}
	if err := unix.Lstat(filepath.Dir(dir), &parent); err != nil {
		return false, err
	}
	return st.Dev != parent.Dev, nil
}

// remove unmounts and deletes the Instance's volumes (never a hostPath:
// it is not under dir).
func (v *volumeManager) remove(uid types.UID) error {
	v.mu.Lock()
	delete(v.projected, uid)
	v.mu.Unlock()
	root := filepath.Join(v.dir, string(uid))
	entries, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("volumes of %s: %w", uid, err)
	}
	pins, err := filepath.Glob(filepath.Join(root, subPathsDir, "*", "*"))
	if err != nil {
		return err
	}
	for _, pin := range pins {
		if err := unpin(pin); err != nil {
			return fmt.Errorf("volumes of %s: %w", uid, err)
		}
	}
	for _, e := range entries {
		if e.Name() == subPathsDir {
			continue
		}
		p := filepath.Join(root, e.Name())
		mounted, err := isMountPoint(p)
		if err != nil {
			return fmt.Errorf("volume %s: %w", p, err)
		}
		if mounted {
			if err := unix.Unmount(p, unix.MNT_DETACH); err != nil {
				return fmt.Errorf("unmount volume %s: %w", p, err)
			}
		}
	}
	if err := os.RemoveAll(root); err != nil {
		return fmt.Errorf("volumes of %s: %w", uid, err)
	}
	return nil
}

// instances are the UIDs that have volumes on the node.
func (v *volumeManager) instances() ([]types.UID, error) {
	entries, err := os.ReadDir(v.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []types.UID
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, types.UID(e.Name()))
		}
	}
	return out, nil
}

// overLimit returns the message of an emptyDir that holds more than its
// sizeLimit, as the kubelet's eviction manager words it, or "".
func (v *volumeManager) overLimit(inst *skiffv1alpha1.Instance) (string, error) {
	for _, vol := range inst.Spec.Volumes {
		ed := vol.EmptyDir
		if ed == nil || ed.SizeLimit == nil || ed.SizeLimit.Sign() <= 0 {
			continue
		}
		used, err := diskUsage(filepath.Join(v.dir, string(inst.UID), vol.Name), ed.Medium == skiffv1alpha1.StorageMediumMemory)
		if err != nil {
			return "", fmt.Errorf("volume %q usage: %w", vol.Name, err)
		}
		if used > ed.SizeLimit.Value() {
			return fmt.Sprintf("Usage of EmptyDir volume %q exceeds the limit %q.", vol.Name, ed.SizeLimit.String()), nil
		}
	}
	return "", nil
}

// diskUsage is the bytes dir takes: a tmpfs's used blocks, else the
// blocks of every file under it (as du counts, hard links once).
func diskUsage(dir string, tmpfs bool) (int64, error) {
	if tmpfs {
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err != nil {
			return 0, err
		}
		return int64(st.Blocks-st.Bfree) * st.Bsize, nil
	}
	var used int64
	seen := map[uint64]bool{}
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		if st.Nlink > 1 && !d.IsDir() {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		used += st.Blocks * 512
		return nil
	})
	return used, err
}

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
