package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
// returns each volume's path on the node by name.
func (v *volumeManager) setup(ctx context.Context, inst *skiffv1alpha1.Instance) (map[string]string, error) {
	if len(inst.Spec.Volumes) == 0 {
		return nil, nil
	}
	v.mu.Lock()
	last, ok := v.projected[inst.UID]
	v.mu.Unlock()
	reproject := !ok || time.Since(last) >= v.refresh
	gid := fsGroup(inst)
	paths := make(map[string]string, len(inst.Spec.Volumes))
	for i := range inst.Spec.Volumes {
		vol := &inst.Spec.Volumes[i]
		dir := filepath.Join(v.dir, string(inst.UID), vol.Name)
		var err error
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
			return nil, &volumeError{volume: vol.Name, err: err}
		}
		paths[vol.Name] = dir
	}
	if reproject {
		v.mu.Lock()
		v.projected[inst.UID] = time.Now()
		v.mu.Unlock()
	}
	return paths, nil
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
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if src.Medium == skiffv1alpha1.StorageMediumMemory {
		mounted, err := isMountPoint(dir)
		if err != nil {
			return err
		}
		if !mounted {
			opts := "mode=0777"
			if limit := memoryLimit(inst); limit > 0 {
				opts += fmt.Sprintf(",size=%d", limit)
			}
			if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
				return fmt.Errorf("mount tmpfs on %s: %w", dir, err)
			}
		}
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

// hostPath checks (or makes) what its type says must be at the path.
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
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return "", err
			}
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
		if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0755"); err != nil {
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
// so), with their modes; with an fsGroup, group-readable.
func projectKeys(data map[string][]byte, items []skiffv1alpha1.KeyToPath, defaultMode *int32, optional bool, gid int, missing string) (map[string]projection.File, error) {
	mode := skiffv1alpha1.DefaultVolumeMode
	if defaultMode != nil {
		mode = *defaultMode
	}
	withGroup := func(m int32) fs.FileMode {
		if gid >= 0 {
			m |= 0o040
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
		files[it.Path] = projection.File{Data: d, Mode: withGroup(m)}
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
	for _, e := range entries {
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
// volumes' paths (paths, by name). A subPath is resolved on the node and
// must stay inside its volume; in an emptyDir or hostPath it is made as a
// directory when missing. ConfigMap and secret volumes are read-only.
func mounts(inst *skiffv1alpha1.Instance, c *skiffv1alpha1.Container, paths map[string]string) ([]bundle.Mount, error) {
	var out []bundle.Mount
	for _, m := range c.VolumeMounts {
		vol := volumeNamed(inst, m.Name)
		root, ok := paths[m.Name]
		if vol == nil || !ok {
			return nil, fmt.Errorf("volumeMount %q: no volume %q", m.MountPath, m.Name)
		}
		projected := vol.ConfigMap != nil || vol.Secret != nil
		src := root
		if m.SubPath != "" {
			var err error
			if src, err = subPath(root, m.SubPath, !projected); err != nil {
				return nil, fmt.Errorf("volumeMount %q: %w", m.MountPath, err)
			}
		}
		out = append(out, bundle.Mount{Source: src, Destination: m.MountPath, ReadOnly: m.ReadOnly || projected})
	}
	return out, nil
}

func volumeNamed(inst *skiffv1alpha1.Instance, name string) *skiffv1alpha1.Volume {
	for i := range inst.Spec.Volumes {
		if inst.Spec.Volumes[i].Name == name {
			return &inst.Spec.Volumes[i]
		}
	}
	return nil
}

// subPath is root/sub with its symlinks resolved, refused when it leads
// out of root; create makes it as a directory when missing.
func subPath(root, sub string, create bool) (string, error) {
	p := filepath.Join(root, sub)
	if create {
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return "", fmt.Errorf("subPath %q: %w", sub, err)
			}
		}
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", fmt.Errorf("subPath %q: %w", sub, err)
	}
	if real != realRoot && !strings.HasPrefix(real, realRoot+string(filepath.Separator)) {
		return "", fmt.Errorf("subPath %q leads out of its volume", sub)
	}
	return real, nil
}
