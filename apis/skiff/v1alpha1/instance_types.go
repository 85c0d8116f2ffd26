package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=inst
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.spec.nodeName`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// Instance is one scheduled copy of a Workload's template: skiff's Pod. It
// is bound to a Node once (spec.nodeName) and run there by the node agent.
type Instance struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is what to run and where it may run.
	// +optional
	Spec InstanceSpec `json:"spec,omitempty"`
	// Status is what the node agent and scheduler observed.
	// +optional
	Status InstanceStatus `json:"status,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true

// InstanceList is a list of Instances.
type InstanceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Instance `json:"items"`
}

// InstanceSpec is an InstanceTemplateSpec plus the node it is bound to.
type InstanceSpec struct {
	// NodeName is the Node this Instance is bound to. Set once, by the
	// scheduler through the binding subresource or by the creator; it
	// cannot change afterwards.
	// +optional
	NodeName string `json:"nodeName,omitempty"`

	InstanceTemplateSpec `json:",inline"`
}

// InstanceTemplateSpec is what a Workload stamps into each Instance: the
// containers and the placement rules, everything but the binding.
type InstanceTemplateSpec struct {
	// Containers run together in the Instance. At least one; names unique.
	// Immutable once the Instance exists.
	// +listType=map
	// +listMapKey=name
	// +patchMergeKey=name
	// +patchStrategy=merge
	Containers []Container `json:"containers" patchStrategy:"merge" patchMergeKey:"name"`
	// InitContainers run one after another, each to completion, before
	// the containers start; one that fails is run again as the restart
	// policy says (Never: the Instance fails). Names unique with the
	// containers'; no probes. Immutable once the Instance exists.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +patchMergeKey=name
	// +patchStrategy=merge
	InitContainers []Container `json:"initContainers,omitempty" patchStrategy:"merge" patchMergeKey:"name"`
	// Volumes the containers may mount. Names unique. Immutable once the
	// Instance exists.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +patchMergeKey=name
	// +patchStrategy=merge,retainKeys
	Volumes []Volume `json:"volumes,omitempty" patchStrategy:"merge,retainKeys" patchMergeKey:"name"`
	// ImagePullSecrets name Secrets of type kubernetes.io/dockerconfigjson
	// in the Instance's namespace whose credentials the agent pulls the
	// images with.
	// +optional
	// +listType=atomic
	ImagePullSecrets []LocalObjectReference `json:"imagePullSecrets,omitempty"`
	// RestartPolicy for the containers: Always (default), OnFailure or Never.
	// +optional
	RestartPolicy RestartPolicy `json:"restartPolicy,omitempty"`
	// NodeSelector must match a Node's labels for the Instance to be placed there.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// Affinity holds node and instance affinity rules.
	// +optional
	Affinity *Affinity `json:"affinity,omitempty"`
	// Tolerations let the Instance be placed on Nodes with matching taints.
	// +optional
	// +listType=atomic
	Tolerations []Toleration `json:"tolerations,omitempty"`
	// TopologySpreadConstraints spread matching Instances across topology domains.
	// +optional
	// +listType=atomic
	TopologySpreadConstraints []TopologySpreadConstraint `json:"topologySpreadConstraints,omitempty"`
	// Priority orders pending Instances for scheduling; higher goes first.
	// +optional
	Priority *int32 `json:"priority,omitempty"`
	// TerminationGracePeriodSeconds is how long the agent waits after SIGTERM
	// before SIGKILL. Defaults to 30.
	// +optional
	TerminationGracePeriodSeconds *int64 `json:"terminationGracePeriodSeconds,omitempty"`
	// SecurityContext holds settings for every container.
	// +optional
	SecurityContext *InstanceSecurityContext `json:"securityContext,omitempty"`
	// HostNetwork runs the containers in the node's network namespace.
	// Otherwise the Instance has a network namespace of its own, shared
	// by its containers, with an address from its node's instanceCIDR.
	// +optional
	HostNetwork bool `json:"hostNetwork,omitempty"`
}

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	// Name of the object.
	Name string `json:"name"`
}

// PullPolicy says when the agent pulls a container's image.
// +enum
type PullPolicy string

// Pull policies, as Kubernetes'.
const (
	// PullAlways asks the registry for the tag's image at each container
	// start (and pulls what it does not have).
	PullAlways PullPolicy = "Always"
	// PullIfNotPresent pulls only an image the node does not have.
	PullIfNotPresent PullPolicy = "IfNotPresent"
	// PullNever never pulls: the image must be on the node (imported).
	PullNever PullPolicy = "Never"
)

// RestartPolicy says when the agent restarts a container that exited.
// +enum
type RestartPolicy string

// Restart policies.
const (
	RestartPolicyAlways    RestartPolicy = "Always"
	RestartPolicyOnFailure RestartPolicy = "OnFailure"
	RestartPolicyNever     RestartPolicy = "Never"
)

// Container is one process tree run from an OCI image.
type Container struct {
	// Name is a DNS label, unique within the Instance.
	Name string `json:"name"`
	// Image is an OCI image reference.
	Image string `json:"image"`
	// Command replaces the image's entrypoint.
	// +optional
	// +listType=atomic
	Command []string `json:"command,omitempty"`
	// Args replace the image's cmd.
	// +optional
	// +listType=atomic
	Args []string `json:"args,omitempty"`
	// ImagePullPolicy is Always, IfNotPresent or Never; default Always for
	// an image tagged :latest or not tagged, IfNotPresent otherwise.
	// +optional
	ImagePullPolicy PullPolicy `json:"imagePullPolicy,omitempty"`
	// Env adds to the image's environment.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +patchMergeKey=name
	// +patchStrategy=merge
	Env []EnvVar `json:"env,omitempty" patchStrategy:"merge" patchMergeKey:"name"`
	// EnvFrom adds every key of a Secret or ConfigMap as a variable (a
	// key that is not a valid variable name is skipped, with an Event).
	// Env wins over EnvFrom, and a later source over an earlier one.
	// +optional
	// +listType=atomic
	EnvFrom []EnvFromSource `json:"envFrom,omitempty"`
	// Ports the container listens on, in the Instance's network
	// namespace; those with a hostPort are published on the node.
	// +optional
	// +listType=map
	// +listMapKey=containerPort
	// +listMapKey=protocol
	// +patchMergeKey=containerPort
	// +patchStrategy=merge
	Ports []ContainerPort `json:"ports,omitempty" patchStrategy:"merge" patchMergeKey:"containerPort"`
	// Resources the container requests (for scheduling) and may use at most.
	// +optional
	Resources ResourceRequirements `json:"resources,omitempty"`
	// WorkingDir replaces the image's working directory.
	// +optional
	WorkingDir string `json:"workingDir,omitempty"`
	// LivenessProbe: when it fails FailureThreshold times in a row the
	// container is restarted (an Unhealthy Event says why).
	// +optional
	LivenessProbe *Probe `json:"livenessProbe,omitempty"`
	// ReadinessProbe decides the container's ready: an Instance is Ready,
	// and counts as available, only while every container is.
	// +optional
	ReadinessProbe *Probe `json:"readinessProbe,omitempty"`
	// StartupProbe runs first; liveness and readiness probes start once it
	// succeeded, and failing it FailureThreshold times restarts the
	// container.
	// +optional
	StartupProbe *Probe `json:"startupProbe,omitempty"`
	// SecurityContext holds the container's security settings, over the
	// Instance's.
	// +optional
	SecurityContext *SecurityContext `json:"securityContext,omitempty"`
	// Lifecycle holds the container's preStop hook.
	// +optional
	Lifecycle *Lifecycle `json:"lifecycle,omitempty"`
	// TerminationMessagePath is a file in the container whose contents
	// (up to 4 KiB) become the terminated state's message when it ends.
	// Defaults to /dev/termination-log.
	// +optional
	TerminationMessagePath string `json:"terminationMessagePath,omitempty"`
	// VolumeMounts put the Instance's volumes into the container.
	// +optional
	// +listType=map
	// +listMapKey=mountPath
	// +patchMergeKey=mountPath
	// +patchStrategy=merge
	VolumeMounts []VolumeMount `json:"volumeMounts,omitempty" patchStrategy:"merge" patchMergeKey:"mountPath"`
}

// EnvVar is one environment variable.
type EnvVar struct {
	// Name of the variable; must be a C identifier-like name without '='.
	Name string `json:"name"`
	// Value of the variable.
	// +optional
	Value string `json:"value,omitempty"`
	// ValueFrom takes the value from a key of a Secret or ConfigMap in the
	// Instance's namespace, read when the container starts. Not with Value.
	// +optional
	ValueFrom *EnvVarSource `json:"valueFrom,omitempty"`
}

// EnvVarSource is where a variable's value comes from: exactly one of its
// fields.
type EnvVarSource struct {
	// SecretKeyRef selects a key of a Secret.
	// +optional
	SecretKeyRef *SecretKeySelector `json:"secretKeyRef,omitempty"`
	// ConfigMapKeyRef selects a key of a ConfigMap.
	// +optional
	ConfigMapKeyRef *ConfigMapKeySelector `json:"configMapKeyRef,omitempty"`
}

// SecretKeySelector selects a key of a Secret.
type SecretKeySelector struct {
	// Name of the Secret.
	Name string `json:"name"`
	// Key in the Secret's data.
	Key string `json:"key"`
	// Optional: when true, a missing Secret or key leaves the variable
	// unset; otherwise the container waits (CreateContainerConfigError).
	// +optional
	Optional *bool `json:"optional,omitempty"`
}

// ConfigMapKeySelector selects a key of a ConfigMap.
type ConfigMapKeySelector struct {
	// Name of the ConfigMap.
	Name string `json:"name"`
	// Key in the ConfigMap's data.
	Key string `json:"key"`
	// Optional: when true, a missing ConfigMap or key leaves the variable
	// unset; otherwise the container waits (CreateContainerConfigError).
	// +optional
	Optional *bool `json:"optional,omitempty"`
}

// EnvFromSource adds every key of a Secret or ConfigMap: exactly one of
// SecretRef and ConfigMapRef.
type EnvFromSource struct {
	// Prefix is put before each key's name.
	// +optional
	Prefix string `json:"prefix,omitempty"`
	// SecretRef names the Secret.
	// +optional
	SecretRef *SecretEnvSource `json:"secretRef,omitempty"`
	// ConfigMapRef names the ConfigMap.
	// +optional
	ConfigMapRef *ConfigMapEnvSource `json:"configMapRef,omitempty"`
}

// SecretEnvSource names a Secret whose keys become variables.
type SecretEnvSource struct {
	// Name of the Secret.
	Name string `json:"name"`
	// Optional: when true, a missing Secret adds nothing; otherwise the
	// container waits (CreateContainerConfigError).
	// +optional
	Optional *bool `json:"optional,omitempty"`
}

// ConfigMapEnvSource names a ConfigMap whose keys become variables.
type ConfigMapEnvSource struct {
	// Name of the ConfigMap.
	Name string `json:"name"`
	// Optional: when true, a missing ConfigMap adds nothing; otherwise the
	// container waits (CreateContainerConfigError).
	// +optional
	Optional *bool `json:"optional,omitempty"`
}

// Protocol is a transport protocol.
// +enum
type Protocol string

// Protocols.
const (
	ProtocolTCP  Protocol = "TCP"
	ProtocolUDP  Protocol = "UDP"
	ProtocolSCTP Protocol = "SCTP"
)

// ContainerPort is a port a container listens on.
type ContainerPort struct {
	// Name is an IANA service name (optional).
	// +optional
	Name string `json:"name,omitempty"`
	// ContainerPort is the port in the container, 1-65535.
	ContainerPort int32 `json:"containerPort"`
	// HostPort publishes the port on the node, 1-65535 (optional): the
	// node forwards what reaches it there to ContainerPort in the
	// Instance. Two Instances asking for the same host port, protocol and
	// address are never placed on one node. With hostNetwork it must
	// equal ContainerPort.
	// +optional
	HostPort int32 `json:"hostPort,omitempty"`
	// Protocol is TCP (default), UDP or SCTP.
	// +optional
	// +default="TCP"
	Protocol Protocol `json:"protocol,omitempty"`
	// HostIP is the node address HostPort is published on; empty is every
	// address of the node.
	// +optional
	HostIP string `json:"hostIP,omitempty"`
}

// ResourceRequirements are a container's requests and limits: cpu, memory
// and extended resources such as skiff.dev/gpu.
type ResourceRequirements struct {
	// Requests are what the scheduler reserves for the container.
	// +optional
	Requests corev1.ResourceList `json:"requests,omitempty"`
	// Limits are the most the container may use.
	// +optional
	Limits corev1.ResourceList `json:"limits,omitempty"`
}

// Affinity groups the affinity rules of an Instance.
type Affinity struct {
	// NodeAffinity constrains the Nodes the Instance may be placed on.
	// +optional
	NodeAffinity *NodeAffinity `json:"nodeAffinity,omitempty"`
	// InstanceAffinity places the Instance near Instances matching a selector.
	// +optional
	InstanceAffinity *InstanceAffinity `json:"instanceAffinity,omitempty"`
	// InstanceAntiAffinity keeps the Instance away from Instances matching a selector.
	// +optional
	InstanceAntiAffinity *InstanceAffinity `json:"instanceAntiAffinity,omitempty"`
}

// NodeAffinity is a set of node selection rules.
type NodeAffinity struct {
	// Required rules must hold for a Node to be chosen.
	// +optional
	RequiredDuringSchedulingIgnoredDuringExecution *NodeSelector `json:"requiredDuringSchedulingIgnoredDuringExecution,omitempty"`
	// Preferred rules add their weight to a Node's score when they hold.
	// +optional
	// +listType=atomic
	PreferredDuringSchedulingIgnoredDuringExecution []PreferredSchedulingTerm `json:"preferredDuringSchedulingIgnoredDuringExecution,omitempty"`
}

// NodeSelector is a disjunction of terms: one must match.
type NodeSelector struct {
	// NodeSelectorTerms are ORed.
	// +listType=atomic
	NodeSelectorTerms []NodeSelectorTerm `json:"nodeSelectorTerms"`
}

// NodeSelectorTerm is a conjunction of requirements on Node labels.
type NodeSelectorTerm struct {
	// MatchExpressions are ANDed.
	// +optional
	// +listType=atomic
	MatchExpressions []NodeSelectorRequirement `json:"matchExpressions,omitempty"`
}

// NodeSelectorOperator relates a label key to values.
// +enum
type NodeSelectorOperator string

// Node selector operators.
const (
	NodeSelectorOpIn           NodeSelectorOperator = "In"
	NodeSelectorOpNotIn        NodeSelectorOperator = "NotIn"
	NodeSelectorOpExists       NodeSelectorOperator = "Exists"
	NodeSelectorOpDoesNotExist NodeSelectorOperator = "DoesNotExist"
	NodeSelectorOpGt           NodeSelectorOperator = "Gt"
	NodeSelectorOpLt           NodeSelectorOperator = "Lt"
)

// NodeSelectorRequirement is one requirement on a Node label.
type NodeSelectorRequirement struct {
	// Key is the label key.
	Key string `json:"key"`
	// Operator is In, NotIn, Exists, DoesNotExist, Gt or Lt.
	Operator NodeSelectorOperator `json:"operator"`
	// Values: one or more for In and NotIn, none for Exists and DoesNotExist,
	// exactly one integer for Gt and Lt.
	// +optional
	// +listType=atomic
	Values []string `json:"values,omitempty"`
}

// PreferredSchedulingTerm is a weighted node selector term.
type PreferredSchedulingTerm struct {
	// Weight in 1-100.
	Weight int32 `json:"weight"`
	// Preference is the term to match.
	Preference NodeSelectorTerm `json:"preference"`
}

// InstanceAffinity holds rules relative to other Instances.
type InstanceAffinity struct {
	// Required terms must all hold.
	// +optional
	// +listType=atomic
	RequiredDuringSchedulingIgnoredDuringExecution []InstanceAffinityTerm `json:"requiredDuringSchedulingIgnoredDuringExecution,omitempty"`
	// Preferred terms add their weight to a Node's score when they hold.
	// +optional
	// +listType=atomic
	PreferredDuringSchedulingIgnoredDuringExecution []WeightedInstanceAffinityTerm `json:"preferredDuringSchedulingIgnoredDuringExecution,omitempty"`
}

// InstanceAffinityTerm selects Instances (in the same namespace) and the
// topology domain they must share (or not share) with this one.
type InstanceAffinityTerm struct {
	// LabelSelector selects the other Instances.
	LabelSelector *metav1.LabelSelector `json:"labelSelector"`
	// TopologyKey is the Node label whose value defines a domain.
	TopologyKey string `json:"topologyKey"`
}

// WeightedInstanceAffinityTerm is an InstanceAffinityTerm with a weight.
type WeightedInstanceAffinityTerm struct {
	// Weight in 1-100.
	Weight int32 `json:"weight"`
	// InstanceAffinityTerm is the term to match.
	InstanceAffinityTerm InstanceAffinityTerm `json:"instanceAffinityTerm"`
}

// TaintEffect is what a taint does to Instances that do not tolerate it.
// +enum
type TaintEffect string

// Taint effects.
const (
	TaintEffectNoSchedule       TaintEffect = "NoSchedule"
	TaintEffectPreferNoSchedule TaintEffect = "PreferNoSchedule"
	TaintEffectNoExecute        TaintEffect = "NoExecute"
)

// TolerationOperator relates a toleration's key to its value.
// +enum
type TolerationOperator string

// Toleration operators.
const (
	TolerationOpEqual  TolerationOperator = "Equal"
	TolerationOpExists TolerationOperator = "Exists"
)

// Toleration lets an Instance be placed on a Node with a matching taint.
type Toleration struct {
	// Key is the taint key; empty with operator Exists matches every taint.
	// +optional
	Key string `json:"key,omitempty"`
	// Operator is Equal (default) or Exists.
	// +optional
	Operator TolerationOperator `json:"operator,omitempty"`
	// Value must equal the taint's value with operator Equal; empty with Exists.
	// +optional
	Value string `json:"value,omitempty"`
	// Effect to match; empty matches every effect.
	// +optional
	Effect TaintEffect `json:"effect,omitempty"`
	// TolerationSeconds bounds how long a NoExecute taint is tolerated
	// before the Instance is evicted; unset tolerates it for ever. Only with
	// effect NoExecute.
	// +optional
	TolerationSeconds *int64 `json:"tolerationSeconds,omitempty"`
}

// UnsatisfiableConstraintAction says what to do when a spread cannot hold.
// +enum
type UnsatisfiableConstraintAction string

// Actions for unsatisfiable topology spread constraints.
const (
	DoNotSchedule  UnsatisfiableConstraintAction = "DoNotSchedule"
	ScheduleAnyway UnsatisfiableConstraintAction = "ScheduleAnyway"
)

// TopologySpreadConstraint spreads matching Instances across the domains
// of a Node label.
type TopologySpreadConstraint struct {
	// MaxSkew is the largest allowed difference in matching Instances
	// between two domains; at least 1.
	MaxSkew int32 `json:"maxSkew"`
	// TopologyKey is the Node label whose value defines a domain.
	TopologyKey string `json:"topologyKey"`
	// WhenUnsatisfiable is DoNotSchedule (a filter) or ScheduleAnyway (a score).
	WhenUnsatisfiable UnsatisfiableConstraintAction `json:"whenUnsatisfiable"`
	// LabelSelector selects the Instances counted.
	// +optional
	LabelSelector *metav1.LabelSelector `json:"labelSelector,omitempty"`
}

// InstancePhase is the lifecycle phase of an Instance.
// +enum
type InstancePhase string

// Instance phases.
const (
	InstancePending   InstancePhase = "Pending"
	InstanceRunning   InstancePhase = "Running"
	InstanceSucceeded InstancePhase = "Succeeded"
	InstanceFailed    InstancePhase = "Failed"
	InstanceUnknown   InstancePhase = "Unknown"
)

// QOSClass is the quality-of-service class computed from resources.
// +enum
type QOSClass string

// QoS classes.
const (
	QOSGuaranteed QOSClass = "Guaranteed"
	QOSBurstable  QOSClass = "Burstable"
	QOSBestEffort QOSClass = "BestEffort"
)

// Instance condition types.
const (
	// InstanceScheduled is True once the Instance is bound to a Node.
	InstanceScheduled = "Scheduled"
	// InstanceReady is True while every container runs and is ready (its readiness probe passes).
	InstanceReady = "Ready"
)

// InstanceStatus is the observed state of an Instance.
type InstanceStatus struct {
	// Phase is Pending, Running, Succeeded, Failed or Unknown.
	// +optional
	Phase InstancePhase `json:"phase,omitempty"`
	// Conditions: Scheduled and Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchMergeKey=type
	// +patchStrategy=merge
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
	// HostIP is the address of the Node running the Instance.
	// +optional
	HostIP string `json:"hostIP,omitempty"`
	// InstanceIP is the Instance's own address, from its node's
	// instanceCIDR; with hostNetwork, the node's address.
	// +optional
	InstanceIP string `json:"instanceIP,omitempty"`
	// StartTime is when the agent accepted the Instance.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// InitContainerStatuses has one entry per init container.
	// +optional
	// +listType=atomic
	InitContainerStatuses []ContainerStatus `json:"initContainerStatuses,omitempty"`
	// ContainerStatuses has one entry per container.
	// +optional
	// +listType=atomic
	ContainerStatuses []ContainerStatus `json:"containerStatuses,omitempty"`
	// QOSClass is computed from the containers' resources at creation.
	// +optional
	QOSClass QOSClass `json:"qosClass,omitempty"`
	// Reason says in one CamelCase word why the Instance is in its phase
	// when a controller ended it, e.g. NodeLost or Preempted.
	// +optional
	Reason string `json:"reason,omitempty"`
	// Message says the same for people.
	// +optional
	Message string `json:"message,omitempty"`
	// NominatedNodeName is the node the scheduler freed room on by
	// preemption and will bind to once the victims are gone.
	// +optional
	NominatedNodeName string `json:"nominatedNodeName,omitempty"`
	// SchedulingFailures names, for the first nodes, the filter that
	// rejected the Instance, when it fits nowhere.
	// +optional
	// +listType=atomic
	SchedulingFailures []NodeSchedulingFailure `json:"schedulingFailures,omitempty"`
}

// NodeSchedulingFailure is why one node cannot take an Instance.
type NodeSchedulingFailure struct {
	// Node is the node's name.
	Node string `json:"node"`
	// Reason is the failing filter's message, e.g. "insufficient cpu".
	Reason string `json:"reason"`
}

// MaxSchedulingFailures bounds InstanceStatus.SchedulingFailures.
const MaxSchedulingFailures = 20

// Reasons controllers give for ending an Instance.
const (
	// ReasonNodeLost: the Instance's node stopped renewing its Lease for
	// longer than the Instance tolerates.
	ReasonNodeLost = "NodeLost"
	// ReasonPreempted: the scheduler evicted the Instance to place one of
	// higher priority.
	ReasonPreempted = "Preempted"
	// ReasonEvicted: the Instance's agent ended it for using more than it
	// may, such as an emptyDir over its sizeLimit.
	ReasonEvicted = "Evicted"
)

// ContainerStatus is the observed state of one container.
type ContainerStatus struct {
	// Name of the container.
	Name string `json:"name"`
	// ContainerID is the runtime's id for the container.
	// +optional
	ContainerID string `json:"containerID,omitempty"`
	// State is the container's current state.
	// +optional
	State ContainerState `json:"state,omitempty"`
	// LastTerminationState is how the container's previous run ended
	// (exit code, reason such as OOMKilled, termination message), kept
	// while it restarts.
	// +optional
	LastTerminationState ContainerState `json:"lastState,omitempty"`
	// Ready is true while the container runs and its readiness probe, if
	// any, succeeds.
	Ready bool `json:"ready"`
	// Started is true once the container's startup probe (if any)
	// succeeded, while it runs.
	// +optional
	Started *bool `json:"started,omitempty"`
	// RestartCount counts restarts by the agent.
	RestartCount int32 `json:"restartCount"`
	// Image is the image reference run.
	Image string `json:"image"`
	// ImageID is the image's content digest.
	// +optional
	ImageID string `json:"imageID,omitempty"`
}

// ContainerState holds exactly one of its members.
type ContainerState struct {
	// Waiting: not running yet, or backing off.
	// +optional
	Waiting *ContainerStateWaiting `json:"waiting,omitempty"`
	// Running: the process runs.
	// +optional
	Running *ContainerStateRunning `json:"running,omitempty"`
	// Terminated: the process exited.
	// +optional
	Terminated *ContainerStateTerminated `json:"terminated,omitempty"`
}

// ContainerStateWaiting is a container that is not running.
type ContainerStateWaiting struct {
	// Reason is a CamelCase word such as ErrImagePull or CrashLoopBackOff.
	// +optional
	Reason string `json:"reason,omitempty"`
	// Message is for humans.
	// +optional
	Message string `json:"message,omitempty"`
}

// ContainerStateRunning is a running container.
type ContainerStateRunning struct {
	// StartedAt is when the process started.
	// +optional
	StartedAt metav1.Time `json:"startedAt,omitempty"`
}

// ContainerStateTerminated is a container whose process exited.
type ContainerStateTerminated struct {
	// ExitCode of the process.
	ExitCode int32 `json:"exitCode"`
	// Reason is a CamelCase word such as Completed, Error or OOMKilled.
	// +optional
	Reason string `json:"reason,omitempty"`
	// Message is for humans.
	// +optional
	Message string `json:"message,omitempty"`
	// StartedAt is when the process started.
	// +optional
	StartedAt metav1.Time `json:"startedAt,omitempty"`
	// FinishedAt is when the process exited.
	// +optional
	FinishedAt metav1.Time `json:"finishedAt,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// Binding binds an Instance to a Node; it is posted to the Instance's
// binding subresource. A second binding of a bound Instance is a Conflict.
type Binding struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// NodeName is the Node to bind to.
	NodeName string `json:"nodeName"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// InstanceLogOptions are the query parameters of an Instance's log
// subresource (GET .../instances/NAME/log).
type InstanceLogOptions struct {
	metav1.TypeMeta `json:",inline"`

	// Container to read; may be omitted when the Instance has one.
	// +optional
	Container string `json:"container,omitempty"`
	// Follow streams new output until the container stops.
	// +optional
	Follow bool `json:"follow,omitempty"`
	// Previous reads the log of the container's run before its last restart.
	// +optional
	Previous bool `json:"previous,omitempty"`
	// SinceSeconds starts at output this many seconds old.
	// +optional
	SinceSeconds *int64 `json:"sinceSeconds,omitempty"`
	// SinceTime starts at output written at or after this time.
	// +optional
	SinceTime *metav1.Time `json:"sinceTime,omitempty"`
	// Timestamps prefixes each line with its RFC 3339 time.
	// +optional
	Timestamps bool `json:"timestamps,omitempty"`
	// TailLines starts this many lines from the end.
	// +optional
	TailLines *int64 `json:"tailLines,omitempty"`
	// LimitBytes stops after this many bytes.
	// +optional
	LimitBytes *int64 `json:"limitBytes,omitempty"`
}
