package nodeagent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/nodeagent/bundle"
)

func TestProjectKeys(t *testing.T) {
	data := map[string][]byte{"a": []byte("1"), "b": []byte("2")}
	mode := func(m int32) *int32 { return &m }
	for _, tc := range []struct {
		name     string
		items    []skiffv1alpha1.KeyToPath
		def      *int32
		optional bool
		gid      int
		want     map[string]os.FileMode // path -> mode
		err      string
	}{
		{name: "every key, 0644", gid: -1, want: map[string]os.FileMode{"a": 0o644, "b": 0o644}},
		{name: "defaultMode", def: mode(0o400), gid: -1, want: map[string]os.FileMode{"a": 0o400, "b": 0o400}},
		{name: "fsGroup reads", def: mode(0o400), gid: 7, want: map[string]os.FileMode{"a": 0o440, "b": 0o440}},
		{name: "items with a mode", gid: -1, items: []skiffv1alpha1.KeyToPath{{Key: "a", Path: "x/a.conf", Mode: mode(0o600)}},
			want: map[string]os.FileMode{"x/a.conf": 0o600}},
		{name: "missing key", gid: -1, items: []skiffv1alpha1.KeyToPath{{Key: "c", Path: "c"}}, err: "missing: c"},
		{name: "missing key, optional", gid: -1, optional: true, items: []skiffv1alpha1.KeyToPath{{Key: "c", Path: "c"}, {Key: "b", Path: "b"}},
			want: map[string]os.FileMode{"b": 0o644}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files, err := projectKeys(data, tc.items, tc.def, tc.optional, tc.gid, "missing")
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]os.FileMode{}
			for p, f := range files {
				got[p] = f.Mode
			}
			if len(got) != len(tc.want) {
				t.Fatalf("files %v, want %v", got, tc.want)
			}
			for p, m := range tc.want {
				if got[p] != m {
					t.Errorf("%s: mode %o, want %o", p, got[p], m)
				}
			}
		})
	}
}

func TestHostPathTypes(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	typ := func(t skiffv1alpha1.HostPathType) *skiffv1alpha1.HostPathType { return &t }
	v := &volumeManager{allowHostPaths: true}
	for _, tc := range []struct {
		path string
		typ  *skiffv1alpha1.HostPathType
		err  string
	}{
		{path: filepath.Join(dir, "anything")},
		{path: dir, typ: typ(skiffv1alpha1.HostPathDirectory)},
		{path: file, typ: typ(skiffv1alpha1.HostPathDirectory), err: "hostPath type check failed: " + file + " is not a directory"},
		{path: filepath.Join(dir, "none"), typ: typ(skiffv1alpha1.HostPathDirectory), err: "is not a directory"},
		{path: file, typ: typ(skiffv1alpha1.HostPathFile)},
		{path: dir, typ: typ(skiffv1alpha1.HostPathFile), err: "hostPath type check failed: " + dir + " is not a file"},
		{path: filepath.Join(dir, "made", "d"), typ: typ(skiffv1alpha1.HostPathDirectoryOrCreate)},
		{path: file, typ: typ(skiffv1alpha1.HostPathDirectoryOrCreate), err: "is not a directory"},
		{path: filepath.Join(dir, "made", "f"), typ: typ(skiffv1alpha1.HostPathFileOrCreate)},
		{path: dir, typ: typ(skiffv1alpha1.HostPathFileOrCreate), err: "is not a file"},
	} {
		got, err := v.hostPath(&skiffv1alpha1.HostPathVolumeSource{Path: tc.path, Type: tc.typ})
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s %v: err %v, want %q", tc.path, tc.typ, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.path):
			t.Errorf("%s %v: %q %v", tc.path, tc.typ, got, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "made", "d")); err != nil || !fi.IsDir() {
		t.Errorf("DirectoryOrCreate made no directory: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "made", "f")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("FileOrCreate made no file: %v", err)
	}
	v.allowHostPaths = false
	if _, err := v.hostPath(&skiffv1alpha1.HostPathVolumeSource{Path: dir}); !errors.Is(err, errHostPathNotAllowed) {
		t.Errorf("without --allow-host-paths: %v", err)
	}
}

// TestVolumeSetupAndRemove makes an emptyDir and a configMap volume of an
// Instance, mounts them into a container (a subPath made in the emptyDir,
// one leading out refused), sees a ConfigMap change reach the files once
// the refresh is due, and removes them all.
func TestVolumeSetupAndRemove(t *testing.T) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "cfg"}, Data: map[string]string{"k": "v1"}}
	reader := fake.NewClientBuilder().WithObjects(cm).Build()
	v := newVolumeManager(t.TempDir(), false, reader)
	inst := &skiffv1alpha1.Instance{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "i", UID: "u1"}}
	inst.Spec.Volumes = []skiffv1alpha1.Volume{
		{Name: "scratch", VolumeSource: skiffv1alpha1.VolumeSource{EmptyDir: &skiffv1alpha1.EmptyDirVolumeSource{SizeLimit: ptr.To(resource.MustParse("64Ki"))}}},
		{Name: "cfg", VolumeSource: skiffv1alpha1.VolumeSource{ConfigMap: &skiffv1alpha1.ConfigMapVolumeSource{Name: "cfg"}}},
	}
	ctx := context.Background()
	paths, _, err := v.setup(ctx, inst)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(paths["cfg"], "k")); err != nil || string(got) != "v1" {
		t.Fatalf("configMap file: %q %v", got, err)
	}
	c := &skiffv1alpha1.Container{Name: "c", VolumeMounts: []skiffv1alpha1.VolumeMount{
		{Name: "scratch", MountPath: "/data", SubPath: "sub"},
		{Name: "cfg", MountPath: "/etc/cfg"},
	}}
	got, err := v.mounts(inst, c, paths)
	if err != nil {
		t.Fatal(err)
	}
	pin := filepath.Join(v.dir, "u1", subPathsDir, "c", "0")
	want := []bundle.Mount{{Source: pin, Destination: "/data"}, {Source: paths["cfg"], Destination: "/etc/cfg", ReadOnly: true}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("mounts %+v, want %+v", got, want)
	}
	// The pin shows the subPath, made with the volume root's mode.
	if err := os.WriteFile(filepath.Join(paths["scratch"], "sub", "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(pin, "f")); err != nil || string(b) != "x" {
		t.Errorf("through the pinned subPath: %q %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(paths["scratch"], "sub")); err != nil || fi.Mode().Perm() != 0o777 {
		t.Errorf("subPath made with mode %v (%v), want the emptyDir's 0777", fi.Mode(), err)
	}
	// A symlink the container made, leading out: neither mounted nor
	// followed to make directories on the node.
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(paths["scratch"], "out")); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"out", "out/made", "sub/../../../etc"} {
		c.VolumeMounts = []skiffv1alpha1.VolumeMount{{Name: "scratch", MountPath: "/x", SubPath: sub}}
		if _, err := v.mounts(inst, c, paths); err == nil {
			t.Errorf("subPath %q out of the volume: mounted", sub)
		}
	}
	if _, err := os.Stat(filepath.Join(outside, "made")); !os.IsNotExist(err) {
		t.Errorf("a subPath through a symlink made a directory outside the volume: %v", err)
	}

	// Over the sizeLimit: the eviction message.
	if msg, err := v.overLimit(inst); err != nil || msg != "" {
		t.Fatalf("empty volume over its limit: %q %v", msg, err)
	}
	if err := os.WriteFile(filepath.Join(paths["scratch"], "big"), make([]byte, 128<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	if msg, err := v.overLimit(inst); err != nil || msg != `Usage of EmptyDir volume "scratch" exceeds the limit "64Ki".` {
		t.Errorf("128 KiB in a 64Ki emptyDir: %q %v", msg, err)
	}

	// A change is read again only once the refresh is due.
	cm.Data["k"] = "v2"
	if err := reader.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}
	if _, _, err := v.setup(ctx, inst); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(paths["cfg"], "k")); string(got) != "v1" {
		t.Errorf("before the refresh: %q, want v1 still", got)
	}
	v.refresh = 0
	if _, _, err := v.setup(ctx, inst); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(paths["cfg"], "k")); string(got) != "v2" {
		t.Errorf("after the refresh: %q, want v2", got)
	}

	// Deleted once the volume is set up: a warning, the files stay.
	if err := reader.Delete(ctx, cm); err != nil {
		t.Fatal(err)
	}
	if _, warning, err := v.setup(ctx, inst); err != nil || warning == nil || !strings.Contains(warning.Error(), `configmap "cfg" not found`) {
		t.Errorf("a ConfigMap deleted after setup: warning %v, err %v; want a warning only", warning, err)
	}
	if got, _ := os.ReadFile(filepath.Join(paths["cfg"], "k")); string(got) != "v2" {
		t.Errorf("after the ConfigMap is deleted: %q, want the last files (v2)", got)
	}

	// A missing ConfigMap says so; optional, the volume is empty.
	inst2 := inst.DeepCopy()
	inst2.UID = "u2"
	inst2.Spec.Volumes = []skiffv1alpha1.Volume{{Name: "gone", VolumeSource: skiffv1alpha1.VolumeSource{ConfigMap: &skiffv1alpha1.ConfigMapVolumeSource{Name: "gone"}}}}
	if _, _, err := v.setup(ctx, inst2); err == nil || err.Error() != `MountVolume.SetUp failed for volume "gone": configmap "gone" not found` {
		t.Errorf("missing ConfigMap: %v", err)
	}
	inst2.Spec.Volumes[0].ConfigMap.Optional = ptr.To(true)
	if _, _, err := v.setup(ctx, inst2); err != nil {
		t.Errorf("missing optional ConfigMap: %v", err)
	}

	uids, err := v.instances()
	if err != nil || len(uids) != 2 {
		t.Errorf("instances with volumes: %v %v", uids, err)
	}
	for _, uid := range uids {
		if err := v.remove(uid); err != nil {
			t.Fatal(err)
		}
	}
	if entries, err := os.ReadDir(v.dir); err != nil || len(entries) != 0 {
		t.Errorf("after remove: %v %v", entries, err)
	}
	if info, err := os.ReadFile("/proc/self/mountinfo"); err == nil && strings.Contains(string(info), v.dir) {
		t.Errorf("still mounted after remove:\n%s", info)
	}
}
