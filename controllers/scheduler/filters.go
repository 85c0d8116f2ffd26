package scheduler

import (
	"fmt"
	"slices"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// A Filter rules a node out for an Instance with a reason ("insufficient
// cpu"), or lets it through with "". Reasons are short and stable: the no-fit
// message counts nodes by reason. It reads the Instance from its cycle.
type Filter struct {
	Name string
	Fn   func(c *cycle, n *NodeInfo) string
}

// DefaultFilters run cheapest first.
var DefaultFilters = []Filter{
	{"NodeReady", nodeReady},
	{"NodeUnschedulable", nodeUnschedulable},
	{"NodeSelector", nodeSelector},
	{"TaintToleration", taintToleration},
	{"NodePorts", nodePorts},
	{"Fit", fit},
	{"InstanceAntiAffinity", instanceAntiAffinity},
	{"TopologySpread", topologySpread},
}

func nodeReady(_ *cycle, n *NodeInfo) string {
	if !n.ready() {
		return "not ready"
	}
	return ""
}

func nodeUnschedulable(_ *cycle, n *NodeInfo) string {
	if n.unschedulable {
		return "unschedulable"
	}
	return ""
}

// nodeSelector applies spec.nodeSelector and the required node affinity.
func nodeSelector(c *cycle, n *NodeInfo) string {
	switch sel, aff := c.matchesNode(n); {
	case !sel:
		return "didn't match node selector"
	case !aff:
		return "didn't match node affinity"
	}
	return ""
}

// taintToleration rules out nodes with a NoSchedule or NoExecute taint the
// Instance does not tolerate.
func taintToleration(c *cycle, n *NodeInfo) string {
	for _, t := range n.taints {
		if t.Effect == skiffv1alpha1.TaintEffectPreferNoSchedule {
			continue
		}
		if !tolerated(c.inst.Spec.Tolerations, t) {
			return fmt.Sprintf("untolerated taint {%s}", taintString(t))
		}
	}
	return ""
}

func taintString(t skiffv1alpha1.Taint) string {
	if t.Value == "" {
		return t.Key
	}
	return t.Key + "=" + t.Value
}

func tolerated(tols []skiffv1alpha1.Toleration, t skiffv1alpha1.Taint) bool {
	return slices.ContainsFunc(tols, func(tol skiffv1alpha1.Toleration) bool { return tol.ToleratesTaint(&t) })
}

// fit rules out nodes without room for the Instance's requests (cpu,
// memory, extended resources such as skiff.dev/gpu) or instance slots.
func fit(c *cycle, n *NodeInfo) string {
	alloc := n.allocatableAmounts()
	if alloc.hasPods && int64(len(n.Instances))*1000 >= alloc.pods {
		return "too many instances"
	}
	for _, r := range c.req {
		have, ok := alloc.get(r.name)
		used, _ := n.requested.get(r.name)
		if !ok || have-used < r.amount {
			return "insufficient " + string(r.name)
		}
	}
	return ""
}

// instanceAntiAffinity rules out nodes whose topology domain already runs
// an Instance the required anti-affinity terms select.
func instanceAntiAffinity(c *cycle, n *NodeInfo) string {
	for i := range c.anti {
		t := &c.anti[i]
		domain, ok := n.Node.Labels[t.key]
		if !ok {
			continue
		}
		if t.invalid {
			return "invalid anti-affinity selector"
		}
		if c.domains(t).byDomain[domain] > 0 {
			return "instance anti-affinity"
		}
	}
	return ""
}

// topologySpread rules out nodes where placing the Instance would make a
// DoNotSchedule constraint's skew exceed maxSkew.
func topologySpread(c *cycle, n *NodeInfo) string {
	for i := range c.spreads {
		s := &c.spreads[i]
		if s.WhenUnsatisfiable != skiffv1alpha1.DoNotSchedule {
			continue
		}
		domain, ok := n.Node.Labels[s.TopologyKey]
		if !ok {
			return s.missing
		}
		if s.invalid {
			return "invalid topology spread selector"
		}
		if c.spreadCounts(s).byDomain[domain]+1-s.lowest > int(s.MaxSkew) {
			return s.skewed
		}
	}
	return ""
}
