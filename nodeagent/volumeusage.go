package nodeagent

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

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
