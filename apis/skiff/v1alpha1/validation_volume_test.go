package v1alpha1

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

const notFound = field.ErrorTypeNotFound

// volumeInstance is validInstance with one volume of each kind, mounted by
// both containers and the init container.
func volumeInstance() *Instance {
	i := validInstance()
	i.Spec.Volumes = []Volume{
		{Name: "scratch", VolumeSource: VolumeSource{EmptyDir: &EmptyDirVolumeSource{}}},
		{Name: "cache", VolumeSource: VolumeSource{EmptyDir: &EmptyDirVolumeSource{Medium: StorageMediumMemory, SizeLimit: ptrTo(resource.MustParse("64Mi"))}}},
		{Name: "logs", VolumeSource: VolumeSource{HostPath: &HostPathVolumeSource{Path: "/var/log/web", Type: ptrTo(HostPathDirectoryOrCreate)}}},
		{Name: "config", VolumeSource: VolumeSource{ConfigMap: &ConfigMapVolumeSource{
			Name: "web-config",
			Items: []KeyToPath{
				{Key: "app.yaml", Path: "conf/app.yaml", Mode: ptrTo(int32(0o600))},
				{Key: "log.level", Path: "log-level"},
			},
			DefaultMode: ptrTo(int32(0o644)),
		}}},
		{Name: "certs", VolumeSource: VolumeSource{Secret: &SecretVolumeSource{
			SecretName:  "web-tls",
			Items:       []KeyToPath{{Key: "tls.crt", Path: "tls.crt"}, {Key: "tls.key", Path: "private/tls.key", Mode: ptrTo(int32(0o400))}},
			DefaultMode: ptrTo(int32(0o440)),
			Optional:    ptrTo(true),
		}}},
	}
	i.Spec.Containers[0].VolumeMounts = []VolumeMount{
		{Name: "scratch", MountPath: "/scratch"},
		{Name: "config", MountPath: "/etc/web", ReadOnly: true},
		{Name: "certs", MountPath: "/etc/tls", ReadOnly: true},
		{Name: "cache", MountPath: "/cache", SubPath: "web/tmp"},
		{Name: "logs", MountPath: "/var/log/web"},
	}
	// Another container may mount the same volume at the same path.
	i.Spec.Containers[1].VolumeMounts = []VolumeMount{{Name: "scratch", MountPath: "/scratch"}}
	i.Spec.InitContainers[0].VolumeMounts = []VolumeMount{{Name: "config", MountPath: "/config", SubPath: "app.yaml"}}
	i.Spec.SecurityContext = &InstanceSecurityContext{FSGroup: ptrTo(int64(2000))}
	return i
}

// volumeCase is a bad volume, mount or fsGroup: the error it must give and,
// when detail is set, a part of the error's message.
type volumeCase struct {
	name   string
	mutate func(*Instance)
	typ    field.ErrorType
	path   string
	detail string
}

func TestValidateVolumes(t *testing.T) {
	const (
		v0, v1, v2, v3, v4 = "spec.volumes[0]", "spec.volumes[1]", "spec.volumes[2]", "spec.volumes[3]", "spec.volumes[4]"
		cm, sec            = v3 + ".configMap", v4 + ".secret"
		m                  = "spec.containers[0].volumeMounts"
		modeMsg            = "must be a number between 0 and 0777 (octal), both inclusive"
	)
	vol := func(i *Instance, n int) *Volume { return &i.Spec.Volumes[n] }
	mount := func(i *Instance, n int) *VolumeMount { return &i.Spec.Containers[0].VolumeMounts[n] }
	tests := []volumeCase{
		// Names.
		{"name missing", func(i *Instance) { vol(i, 0).Name = "" }, required, v0 + ".name", ""},
		{"name not a DNS label", func(i *Instance) { vol(i, 0).Name = "Scratch" }, invalid, v0 + ".name", ""},
		{"name with a dot", func(i *Instance) { vol(i, 0).Name = "scratch.tmp" }, invalid, v0 + ".name", ""},
		{"name too long", func(i *Instance) { vol(i, 0).Name = strings.Repeat("s", 64) }, invalid, v0 + ".name", ""},
		{"name duplicate", func(i *Instance) { vol(i, 1).Name = "scratch" }, duplicate, v1 + ".name", ""},

		// Exactly one source, refused at each source after the first in
		// Kubernetes' order (emptyDir, hostPath, secret, configMap).
		{"no source", func(i *Instance) { vol(i, 0).EmptyDir = nil }, required, v0, "must specify a volume type"},
		{"emptyDir and hostPath", func(i *Instance) {
			vol(i, 0).HostPath = &HostPathVolumeSource{Path: "/x"}
		}, forbidden, v0 + ".hostPath", "may not specify more than 1 volume type"},
		{"emptyDir and configMap", func(i *Instance) {
			vol(i, 0).ConfigMap = &ConfigMapVolumeSource{Name: "c"}
		}, forbidden, v0 + ".configMap", "may not specify more than 1 volume type"},
		{"hostPath and secret", func(i *Instance) {
			vol(i, 2).Secret = &SecretVolumeSource{SecretName: "s"}
		}, forbidden, v2 + ".secret", "may not specify more than 1 volume type"},
		{"secret and configMap", func(i *Instance) {
			vol(i, 4).ConfigMap = &ConfigMapVolumeSource{Name: "c"}
		}, forbidden, v4 + ".configMap", "may not specify more than 1 volume type"},

		// emptyDir.
		{"emptyDir medium unknown", func(i *Instance) { vol(i, 1).EmptyDir.Medium = "HugePages" }, notSupported, v1 + ".emptyDir.medium", ""},
		{"emptyDir sizeLimit negative", func(i *Instance) {
			vol(i, 1).EmptyDir.SizeLimit = ptrTo(resource.MustParse("-1Mi"))
		}, forbidden, v1 + ".emptyDir.sizeLimit", ""},

		// hostPath.
		{"hostPath path missing", func(i *Instance) { vol(i, 2).HostPath.Path = "" }, required, v2 + ".hostPath.path", ""},
		{"hostPath path relative", func(i *Instance) { vol(i, 2).HostPath.Path = "var/log" }, invalid, v2 + ".hostPath.path", "must be an absolute path"},
		{"hostPath path with ..", func(i *Instance) { vol(i, 2).HostPath.Path = "/var/log/../../etc" }, invalid, v2 + ".hostPath.path", "must not contain '..'"},
		{"hostPath path ending in ..", func(i *Instance) { vol(i, 2).HostPath.Path = "/var/.." }, invalid, v2 + ".hostPath.path", "must not contain '..'"},
		{"hostPath type unknown", func(i *Instance) { vol(i, 2).HostPath.Type = ptrTo(HostPathType("Socket")) }, notSupported, v2 + ".hostPath.type", ""},
		{"hostPath type in the wrong case", func(i *Instance) { vol(i, 2).HostPath.Type = ptrTo(HostPathType("directory")) }, notSupported, v2 + ".hostPath.type", ""},

		// configMap and secret names and modes.
		{"configMap name missing", func(i *Instance) { vol(i, 3).ConfigMap.Name = "" }, required, cm + ".name", ""},
		{"configMap name not a DNS subdomain", func(i *Instance) { vol(i, 3).ConfigMap.Name = "Web_Config" }, invalid, cm + ".name", ""},
		{"secret secretName missing", func(i *Instance) { vol(i, 4).Secret.SecretName = "" }, required, sec + ".secretName", ""},
		{"secret secretName not a DNS subdomain", func(i *Instance) { vol(i, 4).Secret.SecretName = "web tls" }, invalid, sec + ".secretName", ""},
		{"configMap defaultMode above 0777", func(i *Instance) { vol(i, 3).ConfigMap.DefaultMode = ptrTo(int32(0o1000)) }, invalid, cm + ".defaultMode", modeMsg},
		{"configMap defaultMode negative", func(i *Instance) { vol(i, 3).ConfigMap.DefaultMode = ptrTo(int32(-1)) }, invalid, cm + ".defaultMode", modeMsg},
		{"secret defaultMode above 0777", func(i *Instance) { vol(i, 4).Secret.DefaultMode = ptrTo(int32(0o4755)) }, invalid, sec + ".defaultMode", modeMsg},
		{"secret defaultMode negative", func(i *Instance) { vol(i, 4).Secret.DefaultMode = ptrTo(int32(-0o644)) }, invalid, sec + ".defaultMode", modeMsg},

		// Items.
		{"item key missing", func(i *Instance) { vol(i, 3).ConfigMap.Items[0].Key = "" }, required, cm + ".items[0].key", ""},
		{"item key not a ConfigMap key", func(i *Instance) { vol(i, 3).ConfigMap.Items[0].Key = "conf/app.yaml" }, invalid, cm + ".items[0].key", ""},
		{"secret item key not a key", func(i *Instance) { vol(i, 4).Secret.Items[1].Key = "tls key" }, invalid, sec + ".items[1].key", ""},
		{"item path missing", func(i *Instance) { vol(i, 3).ConfigMap.Items[1].Path = "" }, required, cm + ".items[1].path", ""},
		{"item path absolute", func(i *Instance) { vol(i, 3).ConfigMap.Items[0].Path = "/etc/app.yaml" }, invalid, cm + ".items[0].path", "must be a relative path"},
		{"item path with ..", func(i *Instance) { vol(i, 3).ConfigMap.Items[0].Path = "conf/../../app.yaml" }, invalid, cm + ".items[0].path", "must not contain '..'"},
		{"item path is ..", func(i *Instance) { vol(i, 3).ConfigMap.Items[0].Path = ".." }, invalid, cm + ".items[0].path", "must not contain '..'"},
		{"item path starts with ..", func(i *Instance) { vol(i, 3).ConfigMap.Items[0].Path = "..data" }, invalid, cm + ".items[0].path", "must not start with '..'"},
		{"secret item path starts with ..", func(i *Instance) { vol(i, 4).Secret.Items[0].Path = "..2026_01_01/tls.crt" }, invalid, sec + ".items[0].path", "must not start with '..'"},
		{"item path duplicate", func(i *Instance) { vol(i, 3).ConfigMap.Items[1].Path = "conf/app.yaml" }, duplicate, cm + ".items[1].path", ""},
		{"item path duplicate once cleaned", func(i *Instance) { vol(i, 3).ConfigMap.Items[1].Path = "./conf//app.yaml" }, duplicate, cm + ".items[1].path", ""},
		{"secret item path duplicate", func(i *Instance) { vol(i, 4).Secret.Items[1].Path = "tls.crt" }, duplicate, sec + ".items[1].path", ""},
		{"item mode above 0777", func(i *Instance) { vol(i, 3).ConfigMap.Items[0].Mode = ptrTo(int32(0o1777)) }, invalid, cm + ".items[0].mode", modeMsg},
		{"item mode negative", func(i *Instance) { vol(i, 4).Secret.Items[1].Mode = ptrTo(int32(-1)) }, invalid, sec + ".items[1].mode", modeMsg},

		// Mounts.
		{"mount name missing", func(i *Instance) { mount(i, 0).Name = "" }, required, m + "[0].name", ""},
		{"mount of no volume", func(i *Instance) { mount(i, 0).Name = "data" }, notFound, m + "[0].name", ""},
		{"mount of a removed volume", func(i *Instance) { i.Spec.Volumes = i.Spec.Volumes[1:] }, notFound, m + "[0].name", ""},
		{"second container mounts no volume", func(i *Instance) {
			i.Spec.Containers[1].VolumeMounts[0].Name = "data"
		}, notFound, "spec.containers[1].volumeMounts[0].name", ""},
		{"init container mounts no volume", func(i *Instance) {
			i.Spec.InitContainers[0].VolumeMounts[0].Name = "data"
		}, notFound, "spec.initContainers[0].volumeMounts[0].name", ""},
		{"init container mountPath relative", func(i *Instance) {
			i.Spec.InitContainers[0].VolumeMounts[0].MountPath = "config"
		}, invalid, "spec.initContainers[0].volumeMounts[0].mountPath", "must be an absolute path"},
		{"mountPath missing", func(i *Instance) { mount(i, 1).MountPath = "" }, required, m + "[1].mountPath", ""},
		{"mountPath relative", func(i *Instance) { mount(i, 1).MountPath = "etc/web" }, invalid, m + "[1].mountPath", "must be an absolute path"},
		{"mountPath with a colon", func(i *Instance) { mount(i, 1).MountPath = "/etc/web:ro" }, invalid, m + "[1].mountPath", "must not contain ':'"},
		{"mountPath duplicate", func(i *Instance) { mount(i, 2).MountPath = "/etc/web" }, duplicate, m + "[2].mountPath", ""},
		{"mountPath duplicate once cleaned", func(i *Instance) { mount(i, 2).MountPath = "/etc/web/" }, duplicate, m + "[2].mountPath", ""},
		{"subPath absolute", func(i *Instance) { mount(i, 3).SubPath = "/web" }, invalid, m + "[3].subPath", "must be a relative path"},
		{"subPath with ..", func(i *Instance) { mount(i, 3).SubPath = "web/../.." }, invalid, m + "[3].subPath", "must not contain '..'"},
		{"init container subPath with ..", func(i *Instance) {
			i.Spec.InitContainers[0].VolumeMounts[0].SubPath = "../etc"
		}, invalid, "spec.initContainers[0].volumeMounts[0].subPath", "must not contain '..'"},

		// fsGroup, like runAsUser.
		{"fsGroup negative", func(i *Instance) { i.Spec.SecurityContext.FSGroup = ptrTo(int64(-1)) }, invalid, "spec.securityContext.fsGroup", "must be between 0 and 2147483647"},
		{"fsGroup too large", func(i *Instance) { i.Spec.SecurityContext.FSGroup = ptrTo(int64(1) << 31) }, invalid, "spec.securityContext.fsGroup", "must be between 0 and 2147483647"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i := volumeInstance()
			tt.mutate(i)
			errs := ValidateInstance(i)
			wantError(t, errs, tt.typ, tt.path)
			if tt.detail != "" {
				wantDetail(t, errs, tt.path, tt.detail)
			}
		})
	}
}

// wantDetail fails the test unless an error at path says detail.
func wantDetail(t *testing.T, errs field.ErrorList, path, detail string) {
	t.Helper()
	for _, e := range errs {
		if e.Field == path && strings.Contains(e.Detail, detail) {
			return
		}
	}
	t.Errorf("want an error at %s saying %q; got:\n%s", path, detail, formatErrors(errs))
}

// TestValidateVolumesErrorsOnce: a bad volume is reported at its own
// path only, not again at the mounts that name it.
func TestValidateVolumesErrorsOnce(t *testing.T) {
	i := volumeInstance()
	i.Spec.Volumes[0].EmptyDir.Medium = "HugePages"
	errs := ValidateInstance(i)
	if len(errs) != 1 {
		t.Errorf("want one error; got:\n%s", formatErrors(errs))
	}
}

func TestValidVolumes(t *testing.T) {
	wantNoErrors(t, ValidateInstance(volumeInstance()))

	tests := []struct {
		name   string
		mutate func(*Instance)
	}{
		{"emptyDir on disk with a sizeLimit", func(i *Instance) {
			i.Spec.Volumes[0].EmptyDir.SizeLimit = ptrTo(resource.MustParse("1Gi"))
		}},
		{"emptyDir of zero size", func(i *Instance) {
			i.Spec.Volumes[0].EmptyDir.SizeLimit = ptrTo(resource.MustParse("0"))
		}},
		{"Memory emptyDir without a sizeLimit", func(i *Instance) { i.Spec.Volumes[1].EmptyDir.SizeLimit = nil }},
		{"hostPath without a type", func(i *Instance) { i.Spec.Volumes[2].HostPath.Type = nil }},
		{"hostPath of the root", func(i *Instance) { i.Spec.Volumes[2].HostPath.Path = "/" }},
		{"hostPath with a dotted name", func(i *Instance) { i.Spec.Volumes[2].HostPath.Path = "/var/..log/.web" }},
		{"configMap without items or modes", func(i *Instance) {
			i.Spec.Volumes[3].ConfigMap = &ConfigMapVolumeSource{Name: "web.config"}
		}},
		{"configMap modes at both ends", func(i *Instance) {
			c := i.Spec.Volumes[3].ConfigMap
			c.DefaultMode, c.Items[0].Mode, c.Items[1].Mode = ptrTo(int32(0)), ptrTo(int32(0o777)), ptrTo(int32(0))
		}},
		{"configMap item paths in subdirectories", func(i *Instance) {
			c := i.Spec.Volumes[3].ConfigMap
			c.Items[0].Path, c.Items[1].Path = "a/b/c.yaml", "a/b/d..e"
		}},
		{"configMap item keys with dots, dashes and underscores", func(i *Instance) {
			c := i.Spec.Volumes[3].ConfigMap
			c.Items[0].Key, c.Items[1].Key = ".hidden", "LOG_level-2"
		}},
		{"secret without items", func(i *Instance) { i.Spec.Volumes[4].Secret.Items = nil }},
		{"secret required", func(i *Instance) { i.Spec.Volumes[4].Secret.Optional = ptrTo(false) }},
		{"subPath with dots", func(i *Instance) { i.Spec.Containers[0].VolumeMounts[3].SubPath = "web/..cache/.tmp" }},
		{"mount of the same volume twice at different paths", func(i *Instance) {
			i.Spec.Containers[0].VolumeMounts[4].Name = "scratch"
		}},
		{"fsGroup 0", func(i *Instance) { i.Spec.SecurityContext.FSGroup = ptrTo(int64(0)) }},
		{"fsGroup the largest id", func(i *Instance) { i.Spec.SecurityContext.FSGroup = ptrTo(int64(2147483647)) }},
	}
	for _, hostPathType := range []HostPathType{HostPathUnset, HostPathDirectoryOrCreate, HostPathDirectory, HostPathFileOrCreate, HostPathFile} {
		tests = append(tests, struct {
			name   string
			mutate func(*Instance)
		}{"hostPath type " + string(hostPathType), func(i *Instance) { i.Spec.Volumes[2].HostPath.Type = ptrTo(hostPathType) }})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i := volumeInstance()
			tt.mutate(i)
			wantNoErrors(t, ValidateInstance(i))
		})
	}

	// A Workload carries the same rules in its template, at its paths, and
	// a defaulted template validates.
	w := validWorkload()
	w.Spec.Template.Spec = volumeInstance().Spec.InstanceTemplateSpec
	w.Spec.Template.Spec.Volumes[3].ConfigMap.DefaultMode = nil
	SetDefaults_Workload(w)
	wantNoErrors(t, ValidateWorkload(w))
	w.Spec.Template.Spec.Volumes[0].Name = "Scratch"
	w.Spec.Template.Spec.Volumes[2].HostPath.Path = "var/log"
	w.Spec.Template.Spec.Containers[0].VolumeMounts[1].MountPath = "etc/web"
	errs := ValidateWorkload(w)
	wantError(t, errs, invalid, "spec.template.spec.volumes[0].name")
	wantError(t, errs, invalid, "spec.template.spec.volumes[2].hostPath.path")
	wantError(t, errs, invalid, "spec.template.spec.containers[0].volumeMounts[1].mountPath")
	wantError(t, errs, notFound, "spec.template.spec.containers[0].volumeMounts[0].name")
}

func TestValidateInstanceUpdateVolumes(t *testing.T) {
	tests := []updateCase[*Instance]{
		{"labels change, volumes as they were", func(n, _ *Instance) { n.Labels = map[string]string{"x": "y"} }, "", ""},
		{"volume added", func(n, _ *Instance) {
			n.Spec.Volumes = append(n.Spec.Volumes, Volume{Name: "more", VolumeSource: VolumeSource{EmptyDir: &EmptyDirVolumeSource{}}})
		}, forbidden, "spec.volumes"},
		{"volume removed", func(n, _ *Instance) {
			n.Spec.Volumes = n.Spec.Volumes[:4]
			n.Spec.Containers[0].VolumeMounts = n.Spec.Containers[0].VolumeMounts[:2]
		}, forbidden, "spec.volumes"},
		{"volumes given to an Instance that had none", func(_, o *Instance) { o.Spec.Volumes = nil }, forbidden, "spec.volumes"},
		{"configMap changed", func(n, _ *Instance) { n.Spec.Volumes[3].ConfigMap.Name = "web-config-2" }, forbidden, "spec.volumes"},
		{"defaultMode changed", func(n, _ *Instance) { n.Spec.Volumes[4].Secret.DefaultMode = ptrTo(int32(0o400)) }, forbidden, "spec.volumes"},
		{"sizeLimit changed", func(n, _ *Instance) {
			n.Spec.Volumes[1].EmptyDir.SizeLimit = ptrTo(resource.MustParse("128Mi"))
		}, forbidden, "spec.volumes"},
		{"sizeLimit written in another unit", func(n, _ *Instance) {
			n.Spec.Volumes[1].EmptyDir.SizeLimit = ptrTo(resource.MustParse("65536Ki"))
		}, "", ""},
		{"volumeMount changed", func(n, _ *Instance) { n.Spec.Containers[0].VolumeMounts[0].ReadOnly = true }, forbidden, "spec.containers"},
		{"init container volumeMount changed", func(n, _ *Instance) {
			n.Spec.InitContainers[0].VolumeMounts[0].SubPath = ""
		}, forbidden, "spec"},
		{"fsGroup changed", func(n, _ *Instance) { n.Spec.SecurityContext.FSGroup = ptrTo(int64(3000)) }, forbidden, "spec"},
	}
	runUpdateCases(t, tests, volumeInstance, ValidateInstanceUpdate)
}
