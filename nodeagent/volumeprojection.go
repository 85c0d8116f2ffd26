package nodeagent

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/nodeagent/projection"
)

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
