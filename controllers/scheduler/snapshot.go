package scheduler

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// NodeInfo is one Node with what is already placed on it.
type NodeInfo struct {
	Node *skiffv1alpha1.Node
	// Requested sums the requests of the Instances on the node.
	Requested corev1.ResourceList
	// Instances are the Instances on the node (bound and assumed).
	Instances []*skiffv1alpha1.Instance

	// hostPorts are the ports the Instances publish on the node.
	hostPorts []hostPort

	// readiness caches the Ready condition, asked once per node and
	// Instance: 0 not yet looked at, 1 ready, 2 not.
	readiness int8
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
	n := &NodeInfo{Node: node, Requested: corev1.ResourceList{}}
	for _, inst := range instances {
		n.Add(inst)
	}
	return n
}

// Add places inst on the node.
func (n *NodeInfo) Add(inst *skiffv1alpha1.Instance) {
	for name, q := range Requests(inst) {
		sum := n.Requested[name]
		sum.Add(q)
		n.Requested[name] = sum
	}
	n.Instances = append(n.Instances, inst)
	n.hostPorts = appendHostPorts(n.hostPorts, inst)
}

// Requests sums an Instance's container requests. The result is read,
// never written: with one container it is that container's own list (the
// scheduler asks for it once per node and Instance).
func Requests(inst *skiffv1alpha1.Instance) corev1.ResourceList {
	if len(inst.Spec.Containers) == 1 {
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
	return out
}

// ready reports the Node's Ready condition.
func ready(node *skiffv1alpha1.Node) bool {
	return meta.IsStatusConditionTrue(node.Status.Conditions, skiffv1alpha1.NodeConditionReady)
}

// free is allocatable minus requested for one resource, and whether the
// node has the resource at all.
func (n *NodeInfo) free(name corev1.ResourceName) (resource.Quantity, bool) {
	alloc, ok := n.Node.Status.Allocatable[name]
	if !ok {
		return resource.Quantity{}, false
	}
	free := alloc.DeepCopy()
	free.Sub(n.Requested[name])
	return free, true
}
