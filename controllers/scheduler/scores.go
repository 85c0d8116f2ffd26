package scheduler

import (
	"math"

	corev1 "k8s.io/api/core/v1"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// MaxScore is the most a score function gives a node.
const MaxScore = 100

// A Score ranks a node that passed the filters, 0 to MaxScore, weighted.
type Score struct {
	Name   string
	Weight int
	Fn     func(inst *skiffv1alpha1.Instance, n *NodeInfo) int
}

// Strategy decides how resources are packed.
type Strategy string

// Strategies.
const (
	// Spread prefers the least allocated nodes (the default).
	Spread Strategy = "spread"
	// BinPack prefers the most allocated nodes.
	BinPack Strategy = "binpack"
)

// Scores returns the score functions of a strategy.
func Scores(s Strategy) []Score {
	alloc := Score{"LeastAllocated", 1, leastAllocated}
	if s == BinPack {
		alloc = Score{"MostAllocated", 1, mostAllocated}
	}
	return []Score{
		alloc,
		{"BalancedAllocation", 1, balancedAllocation},
		{"NodeAffinity", 2, preferredNodeAffinity},
		{"TaintToleration", 1, preferNoScheduleTaints},
	}
}

// fractions are the node's cpu and memory shares in use once inst is
// placed, 0 to 1 (a node without a resource counts as full).
func fractions(inst *skiffv1alpha1.Instance, n *NodeInfo) []float64 {
	req := Requests(inst)
	var out []float64
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		alloc, ok := n.Node.Status.Allocatable[name]
		if !ok || alloc.IsZero() {
			out = append(out, 1)
			continue
		}
		used := n.Requested[name].DeepCopy()
		used.Add(req[name])
		out = append(out, math.Min(1, float64(used.MilliValue())/float64(alloc.MilliValue())))
	}
	return out
}

func leastAllocated(inst *skiffv1alpha1.Instance, n *NodeInfo) int {
	f := fractions(inst, n)
	return int((1 - (f[0]+f[1])/2) * MaxScore)
}

func mostAllocated(inst *skiffv1alpha1.Instance, n *NodeInfo) int {
	f := fractions(inst, n)
	return int((f[0] + f[1]) / 2 * MaxScore)
}

// balancedAllocation prefers nodes whose cpu and memory shares stay close.
func balancedAllocation(inst *skiffv1alpha1.Instance, n *NodeInfo) int {
	f := fractions(inst, n)
	return int((1 - math.Abs(f[0]-f[1])) * MaxScore)
}

// preferredNodeAffinity sums the weights of the preferred terms the node
// matches, scaled to MaxScore.
func preferredNodeAffinity(inst *skiffv1alpha1.Instance, n *NodeInfo) int {
	a := inst.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || len(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution) == 0 {
		return 0
	}
	var total, matched int32
	for _, p := range a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
		total += p.Weight
		if termMatches(p.Preference, n.Node.Labels) {
			matched += p.Weight
		}
	}
	if total == 0 {
		return 0
	}
	return int(matched * MaxScore / total)
}

// preferNoScheduleTaints prefers nodes without PreferNoSchedule taints the
// Instance does not tolerate.
func preferNoScheduleTaints(inst *skiffv1alpha1.Instance, n *NodeInfo) int {
	for _, t := range n.Node.Spec.Taints {
		if t.Effect == skiffv1alpha1.TaintEffectPreferNoSchedule && !tolerated(inst.Spec.Tolerations, t) {
			return 0
		}
	}
	return MaxScore
}
