package scheduler

import (
	"slices"

	"k8s.io/apimachinery/pkg/types"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// Reserve returns nodes with the room preemption freed for other pending
// Instances taken: each pending Instance nominated to a node
// (status.nominatedNodeName) whose priority is at least inst's is placed
// there, as Kubernetes does, so that inst cannot bind into room that was
// made for an Instance that outranks it (or equals it: first come, first
// served). nodes are not modified; the nodes that gain a reservation are
// copies.
func Reserve(inst *skiffv1alpha1.Instance, nodes []*NodeInfo, instances []*skiffv1alpha1.Instance) []*NodeInfo {
	var nominated []*skiffv1alpha1.Instance
	for _, other := range instances {
		if other.Status.NominatedNodeName == "" || other.Spec.NodeName != "" || other.DeletionTimestamp != nil ||
			key(other) == key(inst) || Priority(other) < Priority(inst) {
			continue
		}
		nominated = append(nominated, other)
	}
	if len(nominated) == 0 {
		return nodes // the common case: no map of every placed Instance
	}
	placed := map[types.NamespacedName]bool{} // assumed bound already
	for _, n := range nodes {
		for _, p := range n.Instances {
			placed[key(p)] = true
		}
	}
	byNode := map[string][]*skiffv1alpha1.Instance{}
	for _, other := range nominated {
		if !placed[key(other)] {
			byNode[other.Status.NominatedNodeName] = append(byNode[other.Status.NominatedNodeName], other)
		}
	}
	if len(byNode) == 0 {
		return nodes
	}
	out := make([]*NodeInfo, len(nodes))
	for i, n := range nodes {
		out[i] = n
		if extra := byNode[n.Node.Name]; len(extra) > 0 {
			out[i] = NewNodeInfo(n.Node, append(slices.Clone(n.Instances), extra...)...)
		}
	}
	return out
}

func key(inst *skiffv1alpha1.Instance) types.NamespacedName {
	return types.NamespacedName{Namespace: inst.Namespace, Name: inst.Name}
}
