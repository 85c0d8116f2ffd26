package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.replicas,statuspath=.status.replicas,selectorpath=.status.selector
// +kubebuilder:resource:shortName=wl
// +kubebuilder:printcolumn:name="Desired",type=integer,JSONPath=`.spec.replicas`
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.readyReplicas`
// +kubebuilder:printcolumn:name="Up-to-date",type=integer,JSONPath=`.status.updatedReplicas`
// +kubebuilder:printcolumn:name="Available",type=integer,JSONPath=`.status.availableReplicas`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// Workload keeps a number of Instances of one template running, and rolls
// out changes to the template by a strategy.
type Workload struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the desired state.
	// +optional
	Spec WorkloadSpec `json:"spec,omitempty"`
	// Status is the state the controllers observed.
	// +optional
	Status WorkloadStatus `json:"status,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true

// WorkloadList is a list of Workloads.
type WorkloadList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Workload `json:"items"`
}

// WorkloadSpec is the desired state of a Workload.
type WorkloadSpec struct {
	// Replicas is the number of Instances wanted. Defaults to 1.
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`
	// Selector selects the Instances this Workload owns. Defaults to the
	// template's labels; immutable.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
	// Template is stamped into every Instance.
	Template InstanceTemplate `json:"template"`
	// Strategy replaces old Instances with new ones. Defaults to
	// RollingUpdate with 25% surge and 25% unavailable.
	// +optional
	Strategy WorkloadStrategy `json:"strategy,omitempty"`
	// ProgressDeadlineSeconds is how long a rollout may make no progress
	// before it is reported stalled. Defaults to 600.
	// +optional
	ProgressDeadlineSeconds *int32 `json:"progressDeadlineSeconds,omitempty"`
	// AutoRollback reverts the template to the last revision that became
	// Available when a rollout stalls (Nomad's auto_revert).
	// +optional
	AutoRollback bool `json:"autoRollback,omitempty"`
	// MinReadySeconds is how long an Instance must have been Ready before
	// it counts as available (for availableReplicas and for how far a
	// rolling update may go). Defaults to 0: available once Ready.
	// +optional
	MinReadySeconds int32 `json:"minReadySeconds,omitempty"`
}

// InstanceTemplate is the template of a Workload's Instances.
type InstanceTemplate struct {
	// Metadata holds the labels and annotations every Instance gets.
	// +optional
	Metadata TemplateMetadata `json:"metadata,omitempty"`
	// Spec is every Instance's spec (without nodeName: the scheduler binds).
	Spec InstanceTemplateSpec `json:"spec"`
}

// TemplateMetadata is the part of ObjectMeta a template may set.
type TemplateMetadata struct {
	// Labels for each Instance; the selector defaults to them.
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// Annotations for each Instance.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// WorkloadStrategyType names a rollout strategy.
// +enum
type WorkloadStrategyType string

// Rollout strategies.
const (
	// RollingUpdateStrategy replaces Instances a few at a time.
	RollingUpdateStrategy WorkloadStrategyType = "RollingUpdate"
	// RecreateStrategy deletes every old Instance before creating new ones.
	RecreateStrategy WorkloadStrategyType = "Recreate"
)

// WorkloadStrategy says how a new template replaces the old one.
type WorkloadStrategy struct {
	// Type is RollingUpdate (default) or Recreate.
	// +optional
	Type WorkloadStrategyType `json:"type,omitempty"`
	// RollingUpdate tunes the RollingUpdate strategy; only with that type.
	// +optional
	RollingUpdate *RollingUpdate `json:"rollingUpdate,omitempty"`
}

// RollingUpdate bounds a rolling update.
type RollingUpdate struct {
	// MaxSurge is how many Instances may exist above replicas during a
	// rollout: a number or a percentage of replicas (rounded up). Default 25%.
	// +optional
	MaxSurge *intstr.IntOrString `json:"maxSurge,omitempty"`
	// MaxUnavailable is how many replicas may be unready during a rollout:
	// a number or a percentage (rounded down). Default 25%.
	// +optional
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`
}

// Workload condition types.
const (
	// WorkloadAvailable is True when at least replicas-maxUnavailable are ready.
	WorkloadAvailable = "Available"
	// WorkloadProgressing is True while a rollout makes progress or is done.
	WorkloadProgressing = "Progressing"
)

// WorkloadStatus is the observed state of a Workload.
type WorkloadStatus struct {
	// ObservedGeneration is the generation the controller last acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Replicas counts the Instances owned.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`
	// ReadyReplicas counts owned Instances that are Ready.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`
	// UpdatedReplicas counts owned Instances of the update revision.
	// +optional
	UpdatedReplicas int32 `json:"updatedReplicas,omitempty"`
	// AvailableReplicas counts Ready Instances of any revision.
	// +optional
	AvailableReplicas int32 `json:"availableReplicas,omitempty"`
	// Selector is spec.selector as a string, for the scale subresource.
	// +optional
	Selector string `json:"selector,omitempty"`
	// Conditions: Available and Progressing.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchMergeKey=type
	// +patchStrategy=merge
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
	// CurrentRevision is the template revision most Instances run.
	// +optional
	CurrentRevision string `json:"currentRevision,omitempty"`
	// UpdateRevision is the revision of the current template.
	// +optional
	UpdateRevision string `json:"updateRevision,omitempty"`
	// Plan summarises the last reconciliation plan.
	// +optional
	Plan *WorkloadPlan `json:"plan,omitempty"`
	// LastAvailableRevision is the newest revision that became Available;
	// autoRollback returns to it.
	// +optional
	LastAvailableRevision string `json:"lastAvailableRevision,omitempty"`
	// LastAvailableTemplate is the template of LastAvailableRevision.
	// +optional
	LastAvailableTemplate *InstanceTemplate `json:"lastAvailableTemplate,omitempty"`
	// ProgressTime is when the rollout last made progress; the progress
	// deadline counts from it.
	// +optional
	ProgressTime *metav1.Time `json:"progressTime,omitempty"`
}

// Urgency ranks how far a Workload is from its desired state.
// +enum
type Urgency string

// Urgencies, from the seed's COMPARE phase.
const (
	UrgencyCritical Urgency = "Critical"
	UrgencyHigh     Urgency = "High"
	UrgencyMedium   Urgency = "Medium"
	UrgencyLow      Urgency = "Low"
	UrgencyNone     Urgency = "None"
)

// WorkloadPlan summarises one reconciliation: what differed and what the
// controller decided to do about it.
type WorkloadPlan struct {
	// ObservedGeneration is the Workload generation the plan was made for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Creates counts Instances to create.
	// +optional
	Creates int32 `json:"creates,omitempty"`
	// Deletes counts Instances to delete.
	// +optional
	Deletes int32 `json:"deletes,omitempty"`
	// Replaces counts Instances to replace with the update revision.
	// +optional
	Replaces int32 `json:"replaces,omitempty"`
	// Unchanged counts Instances left as they are.
	// +optional
	Unchanged int32 `json:"unchanged,omitempty"`
	// Magnitude is the number of changes between desired and observed.
	// +optional
	Magnitude int32 `json:"magnitude,omitempty"`
	// Urgency is Critical, High, Medium, Low or None.
	// +optional
	Urgency Urgency `json:"urgency,omitempty"`
}
