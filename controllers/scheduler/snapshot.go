package scheduler

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// NodeInfo is one Node with what is already placed on it.
type NodeInfo struct {
	Node *skiffv1alpha1.Node
	// Instances are the Instances on the node (bound and assumed).
	Instances []*skiffv1alpha1.Instance

	// requested sums the requests of the Instances on the node.
	requested amounts
	// allocatable is the Node's, read once (alloc says whether it was).
	allocatable amounts
	alloc       bool

	// hostPorts are the ports the Instances publish on the node.
	hostPorts []hostPort

	// readiness caches the Ready condition, asked once per node and
	// Instance: 0 not yet looked at, 1 ready, 2 not.
	readiness int8
	// unschedulable and taints are the Node's cordon and taints, copied
	// where the filters read anyway: in a large cluster each Node is a
	// cache miss of its own, which a placement visiting hundreds of
	// nodes would otherwise pay on each.
	unschedulable bool
	taints        []skiffv1alpha1.Taint

	// index is the domain index of the snapshot this node is in (nil
	// until a decision builds one), and pos its place there.
	index *domainIndex
	pos   int
}

// ready reports the node's Ready condition.
func (n *NodeInfo) ready() bool {
	if n.readiness == 0 {
		n.readiness = 2
		if ready(n.Node) {
			n.readiness = 1
		}
	}
	return n.readiness == 1
}

// NewNodeInfo returns the node with the given Instances placed on it.
func NewNodeInfo(node *skiffv1alpha1.Node, instances ...*skiffv1alpha1.Instance) *NodeInfo {
	n := &NodeInfo{Node: node, unschedulable: node.Spec.Unschedulable, taints: node.Spec.Taints}
	for _, inst := range instances {
		n.Add(inst)
	}
	return n
}

// Add places inst on the node, and counts it in the domains of the
// snapshot the node is in.
func (n *NodeInfo) Add(inst *skiffv1alpha1.Instance) {
	n.requested.addList(Requests(inst))
	n.Instances = append(n.Instances, inst)
	n.hostPorts = appendHostPorts(n.hostPorts, inst)
	if n.index != nil {
		n.index.added(n, inst)
	}
}

// allocatableAmounts is the Node's allocatable in milli-units.
func (n *NodeInfo) allocatableAmounts() *amounts {
	if !n.alloc {
		n.allocatable.fromList(n.Node.Status.Allocatable)
		n.alloc = true
	}
	return &n.allocatable
}

// Requests is what an Instance needs, as Kubernetes counts a Pod's: the
// sum of its containers' requests, or an init container's when that is
// more (they run one at a time, before the containers). The result is
// read, never written: with one container and no init containers it is
// that container's own list (the scheduler asks for it once per node and
// Instance).
func Requests(inst *skiffv1alpha1.Instance) corev1.ResourceList {
	if len(inst.Spec.Containers) == 1 && len(inst.Spec.InitContainers) == 0 {
		return inst.Spec.Containers[0].Resources.Requests
	}
	out := corev1.ResourceList{}
	for _, c := range inst.Spec.Containers {
		for name, q := range c.Resources.Requests {
			sum := out[name]
			sum.Add(q)
			out[name] = sum
		}
	}
	for _, c := range inst.Spec.InitContainers {
		for name, q := range c.Resources.Requests {
			if cur, ok := out[name]; !ok || q.Cmp(cur) > 0 {
				out[name] = q.DeepCopy()
			}
		}
	}
	return out
}

// ready reports the Node's Ready condition.
func ready(node *skiffv1alpha1.Node) bool {
	return meta.IsStatusConditionTrue(node.Status.Conditions, skiffv1alpha1.NodeConditionReady)
}
