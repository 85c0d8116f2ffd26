package scheduler

import (
	"math"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// MaxScore is the most a score function gives a node.
const MaxScore = 100

// A Score ranks a node that passed the filters, 0 to MaxScore, weighted.
type Score struct {
	Name   string
	Weight int
	Fn     func(inst *skiffv1alpha1.Instance, n *NodeInfo, all []*NodeInfo) int
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
		{"InstanceAffinity", 2, preferredInstanceAffinity},
		{"TopologySpread", 2, spreadAnyway},
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

func leastAllocated(inst *skiffv1alpha1.Instance, n *NodeInfo, _ []*NodeInfo) int {
	f := fractions(inst, n)
	return int((1 - (f[0]+f[1])/2) * MaxScore)
}

func mostAllocated(inst *skiffv1alpha1.Instance, n *NodeInfo, _ []*NodeInfo) int {
	f := fractions(inst, n)
	return int((f[0] + f[1]) / 2 * MaxScore)
}

// balancedAllocation prefers nodes whose cpu and memory shares stay close.
func balancedAllocation(inst *skiffv1alpha1.Instance, n *NodeInfo, _ []*NodeInfo) int {
	f := fractions(inst, n)
	return int((1 - math.Abs(f[0]-f[1])) * MaxScore)
}

// preferredNodeAffinity sums the weights of the preferred terms the node
// matches, scaled to MaxScore.
func preferredNodeAffinity(inst *skiffv1alpha1.Instance, n *NodeInfo, _ []*NodeInfo) int {
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
func preferNoScheduleTaints(inst *skiffv1alpha1.Instance, n *NodeInfo, _ []*NodeInfo) int {
	for _, t := range n.Node.Spec.Taints {
		if t.Effect == skiffv1alpha1.TaintEffectPreferNoSchedule && !tolerated(inst.Spec.Tolerations, t) {
			return 0
		}
	}
	return MaxScore
}

// preferredInstanceAffinity scores how well the node's topology domains
// suit the preferred instance affinity (towards matching Instances) and
// anti-affinity (away from them) terms, by weight; 50 is neutral.
func preferredInstanceAffinity(inst *skiffv1alpha1.Instance, n *NodeInfo, all []*NodeInfo) int {
	a := inst.Spec.Affinity
	if a == nil {
		return MaxScore / 2
	}
	var total, score int32
	add := func(terms []skiffv1alpha1.WeightedInstanceAffinityTerm, sign int32) {
		for _, t := range terms {
			total += t.Weight
			if inDomain(inst, t.InstanceAffinityTerm, n, all) {
				score += sign * t.Weight
			}
		}
	}
	if a.InstanceAffinity != nil {
		add(a.InstanceAffinity.PreferredDuringSchedulingIgnoredDuringExecution, 1)
	}
	if a.InstanceAntiAffinity != nil {
		add(a.InstanceAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution, -1)
	}
	if total == 0 {
		return MaxScore / 2
	}
	return int(MaxScore/2 + score*(MaxScore/2)/total)
}

// inDomain reports whether the node's domain of the term's topology key
// runs an Instance the term selects.
func inDomain(inst *skiffv1alpha1.Instance, term skiffv1alpha1.InstanceAffinityTerm, n *NodeInfo, all []*NodeInfo) bool {
	domain, ok := n.Node.Labels[term.TopologyKey]
	if !ok {
		return false
	}
	sel, err := metav1.LabelSelectorAsSelector(term.LabelSelector)
	if err != nil {
		return false
	}
	for _, other := range all {
		if other.Node.Labels[term.TopologyKey] != domain {
			continue
		}
		for _, placed := range other.Instances {
			if placed.Namespace == inst.Namespace && sel.Matches(labels.Set(placed.Labels)) {
				return true
			}
		}
	}
	return false
}

// spreadAnyway prefers the domains with the fewest matching Instances for
// ScheduleAnyway topology spread constraints.
func spreadAnyway(inst *skiffv1alpha1.Instance, n *NodeInfo, all []*NodeInfo) int {
	score, count := 0, 0
	for _, c := range inst.Spec.TopologySpreadConstraints {
		if c.WhenUnsatisfiable != skiffv1alpha1.ScheduleAnyway {
			continue
		}
		counts, err := domainCounts(inst, c, all)
		domain, ok := n.Node.Labels[c.TopologyKey]
		if err != nil || !ok {
			continue
		}
		lowest, highest := -1, 0
		for _, v := range counts {
			if lowest < 0 || v < lowest {
				lowest = v
			}
			highest = max(highest, v)
		}
		count++
		if highest == lowest {
			score += MaxScore
			continue
		}
		score += (highest - counts[domain]) * MaxScore / (highest - lowest)
	}
	if count == 0 {
		return MaxScore
	}
	return score / count
}
