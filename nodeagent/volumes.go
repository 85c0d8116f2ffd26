package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
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
