package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// +genclient
// +genclient:nonNamespaced
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=no
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// Node is a machine that runs Instances, registered by its node agent.
type Node struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is set by the agent at registration and by operators.
	// +optional
	Spec NodeSpec `json:"spec,omitempty"`
	// Status is reported by the agent and the node lifecycle controller.
	// +optional
	Status NodeStatus `json:"status,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true

// NodeList is a list of Nodes.
type NodeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Node `json:"items"`
}

// NodeSpec is the desired state of a Node.
type NodeSpec struct {
	// Unschedulable keeps new Instances off the Node (cordon).
	// +optional
	Unschedulable bool `json:"unschedulable,omitempty"`
	// Taints repel Instances that do not tolerate them.
	// +optional
	// +listType=atomic
	Taints []Taint `json:"taints,omitempty"`
	// PublicKey is the agent's Ed25519 public key, base64 (the seed's NodeId).
	// +optional
	PublicKey string `json:"publicKey,omitempty"`
	// InstanceCIDR is the subnet the Node's Instances get their addresses
	// from: a share of the cluster CIDR given by the control plane (or set
	// by an admin), immutable once set.
	// +optional
	InstanceCIDR string `json:"instanceCIDR,omitempty"`
}

// Taint marks a Node so that only tolerating Instances land there.
type Taint struct {
	// Key of the taint.
	Key string `json:"key"`
	// Value of the taint.
	// +optional
	Value string `json:"value,omitempty"`
	// Effect is NoSchedule, PreferNoSchedule or NoExecute.
	Effect TaintEffect `json:"effect"`
	// TimeAdded is when a NoExecute taint was put on; tolerationSeconds
	// count from it.
	// +optional
	TimeAdded *metav1.Time `json:"timeAdded,omitempty"`
}

// NodePhase is the seed's NodeStatus.
// +enum
type NodePhase string

// Node phases.
const (
	NodeReady    NodePhase = "Ready"
	NodeNotReady NodePhase = "NotReady"
	NodeUnknown  NodePhase = "Unknown"
	NodeDown     NodePhase = "Down"
)

// Node condition types.
const (
	// NodeConditionReady is True while the agent renews its Lease.
	NodeConditionReady = "Ready"
	// NodeConditionMemberAlive is True while gossip sees the node alive
	// (the control plane's member of the gossip cluster reaches it,
	// directly or through others).
	NodeConditionMemberAlive = "MemberAlive"
	// NodeConditionOOMScoreLimited is True on a node whose agent may not
	// rank Instances for the OOM killer as the kubelet does (no
	// CAP_SYS_RESOURCE): its message gives the lowest score it may set.
	NodeConditionOOMScoreLimited = "OOMScoreLimited"
)

// GossipState is a node's member state in the gossip cluster, as the
// control plane sees it.
// +enum
type GossipState string

// Gossip states.
const (
	GossipAlive   GossipState = "alive"
	GossipSuspect GossipState = "suspect"
	GossipDead    GossipState = "dead"
	GossipLeft    GossipState = "left"
)

// NodeAddressType names the kind of a node address.
// +enum
type NodeAddressType string

// Node address types.
const (
	NodeHostName   NodeAddressType = "Hostname"
	NodeInternalIP NodeAddressType = "InternalIP"
	NodeExternalIP NodeAddressType = "ExternalIP"
)

// NodeAddress is one address of a Node.
type NodeAddress struct {
	// Type is Hostname, InternalIP or ExternalIP.
	Type NodeAddressType `json:"type"`
	// Address is the address itself.
	Address string `json:"address"`
}

// NodeInfo describes the software on a Node.
type NodeInfo struct {
	// AgentVersion is the skiff agent's version.
	// +optional
	AgentVersion string `json:"agentVersion,omitempty"`
	// RuntimeName is the OCI runtime (youki, runc, crun, sim).
	// +optional
	RuntimeName string `json:"runtimeName,omitempty"`
	// RuntimeVersion is what the runtime binary reports.
	// +optional
	RuntimeVersion string `json:"runtimeVersion,omitempty"`
	// OperatingSystem such as linux.
	// +optional
	OperatingSystem string `json:"operatingSystem,omitempty"`
	// Architecture such as amd64.
	// +optional
	Architecture string `json:"architecture,omitempty"`
	// KernelVersion from uname.
	// +optional
	KernelVersion string `json:"kernelVersion,omitempty"`
}

// NodeStatus is the observed state of a Node.
type NodeStatus struct {
	// Phase is Ready, NotReady, Unknown or Down.
	// +optional
	Phase NodePhase `json:"phase,omitempty"`
	// Conditions: Ready (from the Lease) and MemberAlive (from gossip).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchMergeKey=type
	// +patchStrategy=merge
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
	// Capacity is the machine's total resources.
	// +optional
	Capacity corev1.ResourceList `json:"capacity,omitempty"`
	// Allocatable is capacity minus what is reserved for the system.
	// +optional
	Allocatable corev1.ResourceList `json:"allocatable,omitempty"`
	// Addresses of the Node.
	// +optional
	// +listType=atomic
	Addresses []NodeAddress `json:"addresses,omitempty"`
	// AgentEndpoint is the agent's HTTPS address (logs, exec).
	// +optional
	AgentEndpoint string `json:"agentEndpoint,omitempty"`
	// NodeInfo describes the Node's software.
	// +optional
	NodeInfo NodeInfo `json:"nodeInfo,omitempty"`
	// GossipAddress is the agent's gossip (memberlist) address, ip:port,
	// written by the agent: the other members find it there.
	// +optional
	GossipAddress string `json:"gossipAddress,omitempty"`
	// Gossip is the node's member state as the control plane sees it:
	// alive, suspect, dead or left; empty until it joins.
	// +optional
	Gossip GossipState `json:"gossip,omitempty"`
}
