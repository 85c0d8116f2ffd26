package scheduler

import (
	"fmt"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// A Filter rules a node out for an Instance with a reason ("insufficient
// cpu"), or lets it through with "". Reasons are short and stable: the no-fit
// message counts nodes by reason.
type Filter struct {
	Name string
	Fn   func(inst *skiffv1alpha1.Instance, n *NodeInfo, all []*NodeInfo) string
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

func nodeReady(_ *skiffv1alpha1.Instance, n *NodeInfo, _ []*NodeInfo) string {
	if !n.ready() {
		return "not ready"
	}
	return ""
}

func nodeUnschedulable(_ *skiffv1alpha1.Instance, n *NodeInfo, _ []*NodeInfo) string {
	if n.Node.Spec.Unschedulable {
		return "unschedulable"
	}
	return ""
}

// nodeSelector applies spec.nodeSelector and the required node affinity.
func nodeSelector(inst *skiffv1alpha1.Instance, n *NodeInfo, _ []*NodeInfo) string {
	nodeLabels := labels.Set(n.Node.Labels)
	if !labels.SelectorFromSet(inst.Spec.NodeSelector).Matches(nodeLabels) {
		return "didn't match node selector"
	}
	if a := inst.Spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		terms := a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
		if !slices.ContainsFunc(terms, func(t skiffv1alpha1.NodeSelectorTerm) bool { return termMatches(t, n.Node.Labels) }) {
			return "didn't match node affinity"
		}
	}
	return ""
}

// termMatches ANDs a term's requirements; an empty term matches nothing,
// as in Kubernetes.
func termMatches(t skiffv1alpha1.NodeSelectorTerm, nodeLabels map[string]string) bool {
	if len(t.MatchExpressions) == 0 {
		return false
	}
	for _, r := range t.MatchExpressions {
		v, has := nodeLabels[r.Key]
		ok := false
		switch r.Operator {
		case skiffv1alpha1.NodeSelectorOpIn:
			ok = has && slices.Contains(r.Values, v)
		case skiffv1alpha1.NodeSelectorOpNotIn:
			ok = !has || !slices.Contains(r.Values, v)
		case skiffv1alpha1.NodeSelectorOpExists:
			ok = has
		case skiffv1alpha1.NodeSelectorOpDoesNotExist:
			ok = !has
		case skiffv1alpha1.NodeSelectorOpGt, skiffv1alpha1.NodeSelectorOpLt:
			if has && len(r.Values) == 1 {
				a, err1 := strconv.ParseInt(v, 10, 64)
				b, err2 := strconv.ParseInt(r.Values[0], 10, 64)
				ok = err1 == nil && err2 == nil && (r.Operator == skiffv1alpha1.NodeSelectorOpGt && a > b || r.Operator == skiffv1alpha1.NodeSelectorOpLt && a < b)
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// taintToleration rules out nodes with a NoSchedule or NoExecute taint the
// Instance does not tolerate.
func taintToleration(inst *skiffv1alpha1.Instance, n *NodeInfo, _ []*NodeInfo) string {
	for _, t := range n.Node.Spec.Taints {
		if t.Effect == skiffv1alpha1.TaintEffectPreferNoSchedule {
			continue
		}
		if !tolerated(inst.Spec.Tolerations, t) {
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
func fit(inst *skiffv1alpha1.Instance, n *NodeInfo, _ []*NodeInfo) string {
	if pods, ok := n.Node.Status.Allocatable[corev1.ResourcePods]; ok && int64(len(n.Instances)) >= pods.Value() {
		return "too many instances"
	}
	req := Requests(inst)
	names := make([]corev1.ResourceName, 0, len(req))
	for name := range req {
		names = append(names, name)
	}
	slices.Sort(names) // a stable first reason
	for _, name := range names {
		q := req[name]
		if q.IsZero() {
			continue
		}
		free, ok := n.free(name)
		if !ok || free.Cmp(q) < 0 {
			return "insufficient " + string(name)
		}
	}
	return ""
}

// instanceAntiAffinity rules out nodes whose topology domain already runs
// an Instance the required anti-affinity terms select.
func instanceAntiAffinity(inst *skiffv1alpha1.Instance, n *NodeInfo, all []*NodeInfo) string {
	a := inst.Spec.Affinity
	if a == nil || a.InstanceAntiAffinity == nil {
		return ""
	}
	for _, term := range a.InstanceAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
		domain, ok := n.Node.Labels[term.TopologyKey]
		if !ok {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(term.LabelSelector)
		if err != nil {
			return "invalid anti-affinity selector"
		}
		for _, other := range all {
			if other.Node.Labels[term.TopologyKey] != domain {
				continue
			}
			for _, placed := range other.Instances {
				if placed.Namespace == inst.Namespace && sel.Matches(labels.Set(placed.Labels)) {
					return "instance anti-affinity"
				}
			}
		}
	}
	return ""
}

// topologySpread rules out nodes where placing the Instance would make a
// DoNotSchedule constraint's skew exceed maxSkew.
func topologySpread(inst *skiffv1alpha1.Instance, n *NodeInfo, all []*NodeInfo) string {
	for _, c := range inst.Spec.TopologySpreadConstraints {
		if c.WhenUnsatisfiable != skiffv1alpha1.DoNotSchedule {
			continue
		}
		domain, ok := n.Node.Labels[c.TopologyKey]
		if !ok {
			return "missing topology label " + c.TopologyKey
		}
		counts, err := domainCounts(inst, c, all)
		if err != nil {
			return "invalid topology spread selector"
		}
		lowest := -1
		for _, v := range counts {
			if lowest < 0 || v < lowest {
				lowest = v
			}
		}
		if counts[domain]+1-lowest > int(c.MaxSkew) {
			return "topology spread " + c.TopologyKey
		}
	}
	return ""
}

// domainCounts counts the Instances a constraint selects in each domain of
// its topology key (every domain with an eligible node, even empty ones).
func domainCounts(inst *skiffv1alpha1.Instance, c skiffv1alpha1.TopologySpreadConstraint, all []*NodeInfo) (map[string]int, error) {
	sel, err := metav1.LabelSelectorAsSelector(c.LabelSelector)
	if err != nil {
		return nil, err
	}
	counts := map[string]int{}
	for _, other := range all {
		domain, ok := other.Node.Labels[c.TopologyKey]
		if !ok || nodeReady(inst, other, nil) != "" || nodeSelector(inst, other, nil) != "" {
			continue
		}
		counts[domain] += 0
		for _, placed := range other.Instances {
			if placed.Namespace == inst.Namespace && sel.Matches(labels.Set(placed.Labels)) {
				counts[domain]++
			}
		}
	}
	return counts, nil
}
