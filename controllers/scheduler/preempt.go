package scheduler

import (
	"cmp"
	"slices"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// Priority is an Instance's scheduling priority; unset is 0.
func Priority(inst *skiffv1alpha1.Instance) int32 {
	if inst.Spec.Priority == nil {
		return 0
	}
	return *inst.Spec.Priority
}

// preemptible names the filters that evicting Instances from the node can
// satisfy: room (resources and instance slots), host ports the Instances
// there publish, and required anti-affinity against what runs on the node
// itself. Every other filter (readiness, cordon, selectors, taints,
// topology spread) must pass as things are.
var preemptible = map[string]bool{"Fit": true, "NodePorts": true, "InstanceAntiAffinity": true}

// Preemption is where to make room for an Instance that fits nowhere, and
// whom to evict for it.
type Preemption struct {
	// Node is where room is made; empty when preemption cannot help.
	Node string
	// Victims are the Instances to evict, by namespace and name.
	Victims []*skiffv1alpha1.Instance
}

// victimCost orders candidate nodes: the least important victim set wins.
type victimCost struct {
	highest int32 // the highest victim priority
	count   int
	sum     int64
}

func (a victimCost) compare(b victimCost) int {
	return cmp.Or(cmp.Compare(a.highest, b.highest), cmp.Compare(a.count, b.count), cmp.Compare(a.sum, b.sum))
}

func costOf(victims []*skiffv1alpha1.Instance) victimCost {
	c := victimCost{highest: Priority(victims[0]), count: len(victims)}
	for _, v := range victims {
		c.highest = max(c.highest, Priority(v))
		c.sum += int64(Priority(v))
	}
	return c
}

// Preempt finds, for an Instance that Schedule placed nowhere, the node
// where evicting Instances of strictly lower priority lets it through the
// filters, choosing the node whose victims matter least: the lowest
// highest victim priority, then the fewest victims, then the lowest sum of
// priorities, then the node name. Instances of equal or higher priority,
// pending ones (nominated room) and ones already leaving (being deleted or
// preempted) are never victims.
func (s *Scheduler) Preempt(inst *skiffv1alpha1.Instance, nodes []*NodeInfo) Preemption {
	var best Preemption
	var bestCost victimCost
	c := newCycle(inst, nodes, false)
	for _, n := range nodes {
		victims := s.victimsOn(c, n)
		if len(victims) == 0 {
			continue
		}
		c := costOf(victims)
		if best.Node == "" || c.compare(bestCost) < 0 || c == bestCost && n.Node.Name < best.Node {
			best, bestCost = Preemption{Node: n.Node.Name, Victims: victims}, c
		}
	}
	slices.SortFunc(best.Victims, func(a, b *skiffv1alpha1.Instance) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return best
}

// victimsOn is the smallest set of lower-priority Instances on n whose
// eviction lets inst through the filters, or nil if none does. As in
// Kubernetes, it evicts every candidate, then lets them back in from the
// most important down while inst still fits: those left out are victims.
func (s *Scheduler) victimsOn(c *cycle, n *NodeInfo) []*skiffv1alpha1.Instance {
	for _, f := range s.Filters {
		if !preemptible[f.Name] && f.Fn(c, n) != "" {
			return nil
		}
	}
	inst, all := c.inst, c.all
	var kept, candidates []*skiffv1alpha1.Instance
	for _, placed := range n.Instances {
		if placed.Spec.NodeName == n.Node.Name && Priority(placed) < Priority(inst) && !leaving(placed) {
			candidates = append(candidates, placed)
		} else {
			kept = append(kept, placed)
		}
	}
	if len(candidates) == 0 || !s.fitsWith(inst, n, kept, all) {
		return nil
	}
	slices.SortStableFunc(candidates, func(a, b *skiffv1alpha1.Instance) int {
		return cmp.Or(cmp.Compare(Priority(b), Priority(a)), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	var victims []*skiffv1alpha1.Instance
	for _, cand := range candidates {
		if s.fitsWith(inst, n, append(slices.Clip(kept), cand), all) {
			kept = append(kept, cand)
		} else {
			victims = append(victims, cand)
		}
	}
	return victims
}

// fitsWith runs the preemptible filters on n as if only placed ran on it.
func (s *Scheduler) fitsWith(inst *skiffv1alpha1.Instance, n *NodeInfo, placed []*skiffv1alpha1.Instance, all []*NodeInfo) bool {
	trial := NewNodeInfo(n.Node, placed...)
	trialAll := slices.Clone(all)
	for i := range trialAll {
		if trialAll[i] == n {
			trialAll[i] = trial
		}
	}
	// A trial's node set is thrown away: it counts domains for itself.
	c := newCycle(inst, trialAll, true)
	for _, f := range s.Filters {
		if preemptible[f.Name] && f.Fn(c, trial) != "" {
			return false
		}
	}
	return true
}

// leaving reports whether an Instance is already on its way out: its room
// is coming free without evicting it again.
func leaving(inst *skiffv1alpha1.Instance) bool {
	return inst.DeletionTimestamp != nil || inst.Status.Reason == skiffv1alpha1.ReasonPreempted
}

// VictimsLeft are the preempted Instances still on inst's nominated node.
// While there are any, inst waits for them to go rather than preempting
// again: their room is already on its way.
func VictimsLeft(inst *skiffv1alpha1.Instance, nodes []*NodeInfo) []*skiffv1alpha1.Instance {
	name := inst.Status.NominatedNodeName
	if name == "" {
		return nil
	}
	var left []*skiffv1alpha1.Instance
	for _, n := range nodes {
		if n.Node.Name != name {
			continue
		}
		for _, placed := range n.Instances {
			if placed.Spec.NodeName == name && placed.Status.Reason == skiffv1alpha1.ReasonPreempted && Priority(placed) < Priority(inst) {
				left = append(left, placed)
			}
		}
	}
	return left
}
