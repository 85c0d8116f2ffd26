package scheduler

import (
	"math"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// MaxScore is the most a score function gives a node.
const MaxScore = 100

// A Score ranks a node that passed the filters, 0 to MaxScore, weighted.
type Score struct {
	Name   string
	Weight int
	Fn     func(c *cycle, n *NodeInfo) int
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

// fractions are the node's cpu and memory shares in use once the
// Instance is placed, 0 to 1 (a node without a resource counts as full).
func fractions(c *cycle, n *NodeInfo) (cpu, memory float64) {
	alloc := n.allocatableAmounts()
	share := func(used, req, have int64, has bool) float64 {
		if !has || have == 0 {
			return 1
		}
		return math.Min(1, float64(used+req)/float64(have))
	}
	return share(n.requested.cpu, c.cpu, alloc.cpu, alloc.hasCPU), share(n.requested.memory, c.memory, alloc.memory, alloc.hasMemory)
}

func leastAllocated(c *cycle, n *NodeInfo) int {
	cpu, mem := fractions(c, n)
	return int((1 - (cpu+mem)/2) * MaxScore)
}

func mostAllocated(c *cycle, n *NodeInfo) int {
	cpu, mem := fractions(c, n)
	return int((cpu + mem) / 2 * MaxScore)
}

// balancedAllocation prefers nodes whose cpu and memory shares stay close.
func balancedAllocation(c *cycle, n *NodeInfo) int {
	cpu, mem := fractions(c, n)
	return int((1 - math.Abs(cpu-mem)) * MaxScore)
}

// preferredNodeAffinity sums the weights of the preferred terms the node
// matches, scaled to MaxScore.
func preferredNodeAffinity(c *cycle, n *NodeInfo) int {
	if len(c.preferred) == 0 {
		return 0
	}
	var total, matched int32
	for _, p := range c.preferred {
		total += p.weight
		if p.term.matches(n.Node.Labels) {
			matched += p.weight
		}
	}
	if total == 0 {
		return 0
	}
	return int(matched * MaxScore / total)
}

// preferNoScheduleTaints prefers nodes without PreferNoSchedule taints the
// Instance does not tolerate.
func preferNoScheduleTaints(c *cycle, n *NodeInfo) int {
	for _, t := range n.taints {
		if t.Effect == skiffv1alpha1.TaintEffectPreferNoSchedule && !tolerated(c.inst.Spec.Tolerations, t) {
			return 0
		}
	}
	return MaxScore
}

// preferredInstanceAffinity scores how well the node's topology domains
// suit the preferred instance affinity (towards matching Instances) and
// anti-affinity (away from them) terms, by weight; 50 is neutral.
func preferredInstanceAffinity(c *cycle, n *NodeInfo) int {
	var total, score int32
	add := func(terms []weightedAffinityTerm, sign int32) {
		for i := range terms {
			t := &terms[i]
			total += t.weight
			if c.inDomain(&t.affinityTerm, n) {
				score += sign * t.weight
			}
		}
	}
	add(c.preferAff, 1)
	add(c.preferAnti, -1)
	if total == 0 {
		return MaxScore / 2
	}
	return int(MaxScore/2 + score*(MaxScore/2)/total)
}

// inDomain reports whether the node's domain of the term's topology key
// runs an Instance the term selects.
func (c *cycle) inDomain(t *affinityTerm, n *NodeInfo) bool {
	domain, ok := n.Node.Labels[t.key]
	if !ok || t.invalid {
		return false
	}
	return c.domains(t).byDomain[domain] > 0
}

// spreadAnyway prefers the domains with the fewest matching Instances for
// ScheduleAnyway topology spread constraints.
func spreadAnyway(c *cycle, n *NodeInfo) int {
	score, count := 0, 0
	for i := range c.spreads {
		s := &c.spreads[i]
		if s.WhenUnsatisfiable != skiffv1alpha1.ScheduleAnyway || s.invalid {
			continue
		}
		domain, ok := n.Node.Labels[s.TopologyKey]
		if !ok {
			continue
		}
		counts := c.spreadCounts(s)
		count++
		if s.highest == s.lowest {
			score += MaxScore
			continue
		}
		score += (s.highest - counts.byDomain[domain]) * MaxScore / (s.highest - s.lowest)
	}
	if count == 0 {
		return MaxScore
	}
	return score / count
}
