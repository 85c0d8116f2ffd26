package v1alpha1

import "k8s.io/apimachinery/pkg/api/resource"

// Volume is a directory the Instance's containers may mount: made when
// the Instance starts on its node, kept over container restarts, and
// removed with the Instance (a hostPath's directory excepted). Exactly
// one source is set.
type Volume struct {
	// Name is a DNS label, unique within the Instance; volumeMounts name it.
	Name string `json:"name"`
	// VolumeSource is where the volume's files come from.
	VolumeSource `json:",inline"`
}

// VolumeSource is one of the kinds of volume; exactly one is set.
type VolumeSource struct {
	// EmptyDir is an empty directory for the Instance's lifetime.
	// +optional
	EmptyDir *EmptyDirVolumeSource `json:"emptyDir,omitempty"`
	// HostPath is a file or directory of the node. Agents refuse it
	// unless they run with --allow-host-paths.
	// +optional
	HostPath *HostPathVolumeSource `json:"hostPath,omitempty"`
	// ConfigMap shows a ConfigMap's keys as files, kept up to date.
	// +optional
	ConfigMap *ConfigMapVolumeSource `json:"configMap,omitempty"`
	// Secret shows a Secret's keys as files on a tmpfs, kept up to date.
	// +optional
	Secret *SecretVolumeSource `json:"secret,omitempty"`
}

// StorageMedium is what backs an emptyDir.
type StorageMedium string

const (
	// StorageMediumDefault is the node's disk, under the agent's data directory.
	StorageMediumDefault StorageMedium = ""
	// StorageMediumMemory is a tmpfs: its files count as the containers' memory.
	StorageMediumMemory StorageMedium = "Memory"
)

// EmptyDirVolumeSource is an empty directory made for the Instance.
type EmptyDirVolumeSource struct {
	// Medium is "" (the node's disk) or Memory (a tmpfs).
	// +optional
	Medium StorageMedium `json:"medium,omitempty"`
	// SizeLimit is the most the volume may hold: an Instance whose
	// volume holds more is evicted (phase Failed, reason Evicted).
	// +optional
	SizeLimit *resource.Quantity `json:"sizeLimit,omitempty"`
}

// HostPathType says what must be at a hostPath volume's path.
type HostPathType string

const (
	// HostPathUnset checks nothing.
	HostPathUnset HostPathType = ""
	// HostPathDirectoryOrCreate makes the directory (0755) when nothing is there.
	HostPathDirectoryOrCreate HostPathType = "DirectoryOrCreate"
	// HostPathDirectory must be an existing directory.
	HostPathDirectory HostPathType = "Directory"
	// HostPathFileOrCreate makes an empty file (0644) when nothing is there.
	HostPathFileOrCreate HostPathType = "FileOrCreate"
	// HostPathFile must be an existing regular file.
	HostPathFile HostPathType = "File"
)

// HostPathVolumeSource is a path on the node.
type HostPathVolumeSource struct {
	// Path is absolute, on the node.
	Path string `json:"path"`
	// Type is checked before the containers start: "" (nothing checked),
	// DirectoryOrCreate, Directory, FileOrCreate or File.
	// +optional
	Type *HostPathType `json:"type,omitempty"`
}

// KeyToPath projects one key of a ConfigMap or Secret to a file.
type KeyToPath struct {
	// Key is the key to project.
	Key string `json:"key"`
	// Path is the file's relative path in the volume; no "..".
	Path string `json:"path"`
	// Mode is the file's permission bits (0 to 0777), over defaultMode.
	// +optional
	Mode *int32 `json:"mode,omitempty"`
}

// ConfigMapVolumeSource shows a ConfigMap of the Instance's namespace as
// files: one per key (or per item), updated within a minute of a change.
type ConfigMapVolumeSource struct {
	// Name of the ConfigMap.
	Name string `json:"name"`
	// Items, when set, project only these keys, to these paths; a key
	// missing from the ConfigMap is an error unless optional.
	// +optional
	// +listType=atomic
	Items []KeyToPath `json:"items,omitempty"`
	// DefaultMode is the files' permission bits (0 to 0777; default 0644).
	// +optional
	DefaultMode *int32 `json:"defaultMode,omitempty"`
	// Optional lets the containers start without the ConfigMap (or an
	// item's key): the volume is then empty.
	// +optional
	Optional *bool `json:"optional,omitempty"`
}

// SecretVolumeSource shows a Secret of the Instance's namespace as files
// on a tmpfs (never on the node's disk), updated within a minute.
type SecretVolumeSource struct {
	// SecretName of the Secret.
	SecretName string `json:"secretName"`
	// Items, when set, project only these keys, to these paths; a key
	// missing from the Secret is an error unless optional.
	// +optional
	// +listType=atomic
	Items []KeyToPath `json:"items,omitempty"`
	// DefaultMode is the files' permission bits (0 to 0777; default 0644).
	// +optional
	DefaultMode *int32 `json:"defaultMode,omitempty"`
	// Optional lets the containers start without the Secret (or an item's key).
	// +optional
	Optional *bool `json:"optional,omitempty"`
}

// VolumeMount puts a volume (or a path in it) into a container.
type VolumeMount struct {
	// Name of the Instance's volume.
	Name string `json:"name"`
	// MountPath is the absolute path in the container; unique among the
	// container's mounts, with no ':'.
	MountPath string `json:"mountPath"`
	// ReadOnly mounts it read-only. ConfigMap and Secret volumes are
	// always read-only.
	// +optional
	ReadOnly bool `json:"readOnly,omitempty"`
	// SubPath mounts this relative path of the volume instead of its root
	// (made as a directory in an emptyDir when missing); no "..". A file
	// mounted by subPath is not updated when its ConfigMap or Secret is.
	// +optional
	SubPath string `json:"subPath,omitempty"`
}

// DefaultVolumeMode is the permission bits of projected files.
const DefaultVolumeMode int32 = 0o644
