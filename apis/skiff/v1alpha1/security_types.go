package v1alpha1

// InstanceSecurityContext holds settings for every container of an
// Instance; a container's own SecurityContext wins where both set one.
type InstanceSecurityContext struct {
	// RunAsUser is the user id the containers' processes run as (default:
	// the image's user).
	// +optional
	RunAsUser *int64 `json:"runAsUser,omitempty"`
	// RunAsGroup is their primary group id (default: the image's).
	// +optional
	RunAsGroup *int64 `json:"runAsGroup,omitempty"`
	// RunAsNonRoot refuses to start a container whose process would run
	// as user 0.
	// +optional
	RunAsNonRoot *bool `json:"runAsNonRoot,omitempty"`
	// SeccompProfile is the containers' seccomp filter.
	// +optional
	SeccompProfile *SeccompProfile `json:"seccompProfile,omitempty"`
	// FSGroup is a group id every container's processes also belong to,
	// and that owns the Instance's emptyDir, configMap and secret volumes
	// (directories setgid, files group-readable, emptyDirs group-writable)
	// as in Kubernetes. HostPath volumes are left as they are.
	// +optional
	FSGroup *int64 `json:"fsGroup,omitempty"`
}

// SecurityContext holds one container's security settings.
type SecurityContext struct {
	// RunAsUser is the user id the process runs as.
	// +optional
	RunAsUser *int64 `json:"runAsUser,omitempty"`
	// RunAsGroup is its primary group id.
	// +optional
	RunAsGroup *int64 `json:"runAsGroup,omitempty"`
	// RunAsNonRoot refuses to start the container if its process would
	// run as user 0.
	// +optional
	RunAsNonRoot *bool `json:"runAsNonRoot,omitempty"`
	// ReadOnlyRootFilesystem mounts the root file system read-only.
	// +optional
	ReadOnlyRootFilesystem *bool `json:"readOnlyRootFilesystem,omitempty"`
	// AllowPrivilegeEscalation: true lets a process of the container gain
	// privileges (setuid binaries, file capabilities). Unset or false, it
	// runs with no_new_privs, skiff's default.
	// +optional
	AllowPrivilegeEscalation *bool `json:"allowPrivilegeEscalation,omitempty"`
	// Capabilities adds to and drops from the default set.
	// +optional
	Capabilities *Capabilities `json:"capabilities,omitempty"`
	// Privileged runs the container with every capability and device and
	// no seccomp filter; refused unless the agent allows it.
	// +optional
	Privileged *bool `json:"privileged,omitempty"`
	// SeccompProfile is the container's seccomp filter.
	// +optional
	SeccompProfile *SeccompProfile `json:"seccompProfile,omitempty"`
}

// Capability is a Linux capability, without the CAP_ prefix (NET_ADMIN).
type Capability string

// Capabilities to add and drop ("ALL" drops every one).
type Capabilities struct {
	// Add are capabilities added to the default set.
	// +optional
	// +listType=atomic
	Add []Capability `json:"add,omitempty"`
	// Drop are capabilities removed from it.
	// +optional
	// +listType=atomic
	Drop []Capability `json:"drop,omitempty"`
}

// SeccompProfileType is RuntimeDefault or Unconfined.
// +enum
type SeccompProfileType string

// Seccomp profile types.
const (
	// SeccompProfileTypeRuntimeDefault is the agent's default filter.
	SeccompProfileTypeRuntimeDefault SeccompProfileType = "RuntimeDefault"
	// SeccompProfileTypeUnconfined is no filter.
	SeccompProfileTypeUnconfined SeccompProfileType = "Unconfined"
)

// SeccompProfile selects a seccomp filter.
type SeccompProfile struct {
	// Type is RuntimeDefault or Unconfined.
	Type SeccompProfileType `json:"type"`
}

// Lifecycle holds hooks the agent runs around a container's life.
type Lifecycle struct {
	// PreStop runs before the container is sent SIGTERM, within its
	// grace period; the container is stopped whatever it returns.
	// +optional
	PreStop *LifecycleHandler `json:"preStop,omitempty"`
}

// LifecycleHandler is exactly one of Exec and HTTPGet.
type LifecycleHandler struct {
	// Exec runs a command in the container.
	// +optional
	Exec *ExecAction `json:"exec,omitempty"`
	// HTTPGet asks an HTTP endpoint of the container.
	// +optional
	HTTPGet *HTTPGetAction `json:"httpGet,omitempty"`
}

// DefaultTerminationMessagePath is where a container may write why it
// ended, as in Kubernetes.
const DefaultTerminationMessagePath = "/dev/termination-log"
