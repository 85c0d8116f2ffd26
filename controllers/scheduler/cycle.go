package scheduler

import (
	"fmt"
	"slices"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// cycle is one Instance's decision over one set of nodes: what the filters
// and scores read for every node, worked out once (kube-scheduler's cycle
// state). Requests are integers, selectors and terms are parsed, and
// topology domains are counted by the snapshot's index, not per node.
type cycle struct {
	inst *skiffv1alpha1.Instance
	all  []*NodeInfo
	// local, when set, counts domains for this cycle only instead of in
	// the nodes' index (preemption's trial node sets are thrown away).
	local  bool
	counts map[string]*domainCount

	req         []request
	cpu, memory int64
	// selector is spec.nodeSelector (nil when empty); required and
	// preferred are the node affinity terms, compiled.
	selector  labels.Selector
	required  []nodeTerm
	preferred []weightedNodeTerm

	spreads    []spread
	anti       []affinityTerm
	preferAff  []weightedAffinityTerm
	preferAnti []weightedAffinityTerm
	hasPorts   bool
}

// newCycle prepares inst's decision over all.
func newCycle(inst *skiffv1alpha1.Instance, all []*NodeInfo, local bool) *cycle {
	c := &cycle{inst: inst, all: all, local: local, req: requestsOf(inst)}
	for _, r := range c.req {
		switch r.name {
		case "cpu":
			c.cpu = r.amount
		case "memory":
			c.memory = r.amount
		}
	}
	if len(inst.Spec.NodeSelector) > 0 {
		c.selector = labels.SelectorFromSet(inst.Spec.NodeSelector)
	}
	if a := inst.Spec.Affinity; a != nil {
		if na := a.NodeAffinity; na != nil {
			if r := na.RequiredDuringSchedulingIgnoredDuringExecution; r != nil {
				c.required = make([]nodeTerm, len(r.NodeSelectorTerms))
				for i, t := range r.NodeSelectorTerms {
					c.required[i] = compileNodeTerm(t)
				}
			}
			for _, p := range na.PreferredDuringSchedulingIgnoredDuringExecution {
				c.preferred = append(c.preferred, weightedNodeTerm{p.Weight, compileNodeTerm(p.Preference)})
			}
		}
		if a.InstanceAntiAffinity != nil {
			for _, t := range a.InstanceAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
				c.anti = append(c.anti, c.affinityTerm(t))
			}
			for _, t := range a.InstanceAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
				c.preferAnti = append(c.preferAnti, weightedAffinityTerm{t.Weight, c.affinityTerm(t.InstanceAffinityTerm)})
			}
		}
		if a.InstanceAffinity != nil {
			for _, t := range a.InstanceAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
				c.preferAff = append(c.preferAff, weightedAffinityTerm{t.Weight, c.affinityTerm(t.InstanceAffinityTerm)})
			}
		}
	}
	for _, sc := range inst.Spec.TopologySpreadConstraints {
		c.spreads = append(c.spreads, c.spread(sc))
	}
	for i := range inst.Spec.Containers {
		for _, p := range inst.Spec.Containers[i].Ports {
			c.hasPorts = c.hasPorts || p.HostPort != 0
		}
	}
	return c
}

// matchesNode reports whether n passes spec.nodeSelector and the required
// node affinity.
func (c *cycle) matchesNode(n *NodeInfo) (selectorOK, affinityOK bool) {
	if c.selector != nil && !c.selector.Matches(labels.Set(n.Node.Labels)) {
		return false, false
	}
	if c.required == nil {
		return true, true
	}
	for i := range c.required {
		if c.required[i].matches(n.Node.Labels) {
			return true, true
		}
	}
	return true, false
}

// nodeTerm is a NodeSelectorTerm with its values ready to look up.
type nodeTerm []nodeRequirement

type nodeRequirement struct {
	key    string
	op     skiffv1alpha1.NodeSelectorOperator
	values []string
	set    map[string]bool // for long value lists
	number int64           // Gt, Lt
	valid  bool            // Gt, Lt: one value, an integer
}

func compileNodeTerm(t skiffv1alpha1.NodeSelectorTerm) nodeTerm {
	out := make(nodeTerm, len(t.MatchExpressions))
	for i, r := range t.MatchExpressions {
		req := nodeRequirement{key: r.Key, op: r.Operator, values: r.Values}
		if len(r.Values) > 8 {
			req.set = make(map[string]bool, len(r.Values))
			for _, v := range r.Values {
				req.set[v] = true
			}
		}
		if len(r.Values) == 1 {
			n, err := strconv.ParseInt(r.Values[0], 10, 64)
			req.number, req.valid = n, err == nil
		}
		out[i] = req
	}
	return out
}

func (r *nodeRequirement) has(v string) bool {
	if r.set != nil {
		return r.set[v]
	}
	return slices.Contains(r.values, v)
}

// matches ANDs the term's requirements; an empty term matches nothing, as
// in Kubernetes.
func (t nodeTerm) matches(nodeLabels map[string]string) bool {
	if len(t) == 0 {
		return false
	}
	for i := range t {
		r := &t[i]
		v, has := nodeLabels[r.key]
		ok := false
		switch r.op {
		case skiffv1alpha1.NodeSelectorOpIn:
			ok = has && r.has(v)
		case skiffv1alpha1.NodeSelectorOpNotIn:
			ok = !has || !r.has(v)
		case skiffv1alpha1.NodeSelectorOpExists:
			ok = has
		case skiffv1alpha1.NodeSelectorOpDoesNotExist:
			ok = !has
		case skiffv1alpha1.NodeSelectorOpGt, skiffv1alpha1.NodeSelectorOpLt:
			if has && r.valid {
				a, err := strconv.ParseInt(v, 10, 64)
				ok = err == nil && (r.op == skiffv1alpha1.NodeSelectorOpGt && a > r.number || r.op == skiffv1alpha1.NodeSelectorOpLt && a < r.number)
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

type weightedNodeTerm struct {
	weight int32
	term   nodeTerm
}

// affinityTerm is an instance (anti-)affinity term with its selector
// parsed; counts is found on first use.
type affinityTerm struct {
	key      string
	selector labels.Selector
	invalid  bool
	memo     string
	counts   *domainCount
}

type weightedAffinityTerm struct {
	weight int32
	affinityTerm
}

func (c *cycle) affinityTerm(t skiffv1alpha1.InstanceAffinityTerm) affinityTerm {
	sel, err := metav1.LabelSelectorAsSelector(t.LabelSelector)
	if err != nil {
		return affinityTerm{key: t.TopologyKey, invalid: true}
	}
	return affinityTerm{key: t.TopologyKey, selector: sel, memo: "a\x00" + c.inst.Namespace + "\x00" + selectorKey(t.LabelSelector, sel) + "\x00" + t.TopologyKey}
}

// domains counts, for each value of the term's topology key (nodes
// without it under ""), the Instances of the namespace the term selects.
func (c *cycle) domains(t *affinityTerm) *domainCount {
	if t.counts == nil {
		t.counts = c.count(t.memo, func() *domainCount {
			return &domainCount{namespace: c.inst.Namespace, selector: t.selector, key: t.key}
		})
	}
	return t.counts
}

// spread is a topology spread constraint with its counts' extremes.
type spread struct {
	skiffv1alpha1.TopologySpreadConstraint
	selector labels.Selector
	invalid  bool
	memo     string
	counts   *domainCount
	// lowest and highest are the fewest and most matching Instances in
	// an eligible domain (lowest -1 when there is none).
	lowest, highest int
	// missing and skewed are the filter's reasons, made once.
	missing, skewed string
}

func (c *cycle) spread(sc skiffv1alpha1.TopologySpreadConstraint) spread {
	s := spread{TopologySpreadConstraint: sc, missing: "missing topology label " + sc.TopologyKey, skewed: "topology spread " + sc.TopologyKey}
	sel, err := metav1.LabelSelectorAsSelector(sc.LabelSelector)
	if err != nil {
		s.invalid = true
		return s
	}
	s.selector = sel
	// The eligible nodes depend on the Instance's node selection.
	s.memo = "s\x00" + c.inst.Namespace + "\x00" + selectorKey(sc.LabelSelector, sel) + "\x00" + sc.TopologyKey + "\x00" +
		labels.Set(c.inst.Spec.NodeSelector).String() + "\x00" + fmt.Sprint(c.required)
	return s
}

// spreadCounts counts the Instances the constraint selects in each domain
// of its topology key that has an eligible node (ready, and passing the
// Instance's node selection), even domains with none.
func (c *cycle) spreadCounts(s *spread) *domainCount {
	if s.counts == nil {
		s.counts = c.count(s.memo, func() *domainCount {
			return &domainCount{namespace: c.inst.Namespace, selector: s.selector, key: s.TopologyKey, eligible: func(n *NodeInfo) bool {
				if _, ok := n.Node.Labels[s.TopologyKey]; !ok || !n.ready() {
					return false
				}
				sel, aff := c.matchesNode(n)
				return sel && aff
			}}
		})
		s.lowest, s.highest = -1, 0
		for _, v := range s.counts.byDomain {
			if s.lowest < 0 || v < s.lowest {
				s.lowest = v
			}
			s.highest = max(s.highest, v)
		}
	}
	return s.counts
}

// count returns the counts memo names, from the snapshot's index (built
// and kept up to date by NodeInfo.Add) or, for a local cycle, its own.
func (c *cycle) count(memo string, newCount func() *domainCount) *domainCount {
	if !c.local {
		return indexOf(c.all).count(memo, newCount)
	}
	if dc, ok := c.counts[memo]; ok {
		return dc
	}
	if c.counts == nil {
		c.counts = map[string]*domainCount{}
	}
	dc := newCount()
	dc.fill(c.all, false)
	c.counts[memo] = dc
	return dc
}

// selectorKey tells selectors apart in memo names: a nil selector
// selects nothing, an empty one everything.
func selectorKey(ls *metav1.LabelSelector, sel labels.Selector) string {
	if ls == nil {
		return "\x01nothing"
	}
	return sel.String()
}
