package scheduler

import (
	"k8s.io/apimachinery/pkg/labels"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// domainCount counts the Instances of a namespace that a selector picks,
// per value of a topology key.
type domainCount struct {
	namespace string
	selector  labels.Selector
	key       string
	// eligible, when set, is a spread's node filter: only the nodes it
	// passes count, and their domains exist even with no Instance. When
	// nil (affinity) every node counts, under "" when it lacks the key.
	eligible   func(*NodeInfo) bool
	eligibleAt []bool // by NodeInfo.pos, for an index's counts
	byDomain   map[string]int
}

func (dc *domainCount) selects(inst *skiffv1alpha1.Instance) bool {
	return inst.Namespace == dc.namespace && dc.selector.Matches(labels.Set(inst.Labels))
}

// fill counts over nodes; indexed keeps each node's eligibility for the
// Adds to come.
func (dc *domainCount) fill(nodes []*NodeInfo, indexed bool) {
	dc.byDomain = map[string]int{}
	if indexed && dc.eligible != nil {
		dc.eligibleAt = make([]bool, len(nodes))
	}
	for i, n := range nodes {
		if dc.eligible != nil {
			if !dc.eligible(n) {
				continue
			}
			if indexed {
				dc.eligibleAt[i] = true
			}
		}
		domain := n.Node.Labels[dc.key]
		dc.byDomain[domain] += 0
		for _, placed := range n.Instances {
			if dc.selects(placed) {
				dc.byDomain[domain]++
			}
		}
	}
}

// domainIndex is the domain counts of one snapshot (one slice of
// NodeInfos), each made when a decision first needs it and kept up to date
// by NodeInfo.Add from then on: the decisions after it read a count, not
// every node. A snapshot's slice must not be changed in place; nodes are
// added to with Add.
type domainIndex struct {
	nodes []*NodeInfo
	// stale is set when another index took over some of the nodes (a
	// NodeInfo shared by two slices counts for the newer one only).
	stale  bool
	counts map[string]*domainCount
}

// owns reports whether ix is the live index of the slice nodes.
func (ix *domainIndex) owns(nodes []*NodeInfo) bool {
	return !ix.stale && len(nodes) > 0 && len(ix.nodes) == len(nodes) && &ix.nodes[0] == &nodes[0] && nodes[len(nodes)-1].index == ix
}

// indexOf returns the index of the snapshot nodes, making it if needed.
func indexOf(nodes []*NodeInfo) *domainIndex {
	if len(nodes) > 0 {
		if ix := nodes[0].index; ix != nil && ix.owns(nodes) {
			return ix
		}
	}
	ix := &domainIndex{nodes: nodes, counts: map[string]*domainCount{}}
	for i, n := range nodes {
		if n.index != nil && n.index != ix {
			n.index.stale = true
		}
		n.index, n.pos = ix, i
	}
	return ix
}

// count returns the counts named memo, filling them on first use.
func (ix *domainIndex) count(memo string, newCount func() *domainCount) *domainCount {
	if dc, ok := ix.counts[memo]; ok {
		return dc
	}
	dc := newCount()
	dc.fill(ix.nodes, true)
	ix.counts[memo] = dc
	return dc
}

// added counts inst, just placed on n, in every count that selects it.
func (ix *domainIndex) added(n *NodeInfo, inst *skiffv1alpha1.Instance) {
	if ix.stale {
		return
	}
	for _, dc := range ix.counts {
		if dc.eligibleAt != nil && !dc.eligibleAt[n.pos] || !dc.selects(inst) {
			continue
		}
		dc.byDomain[n.Node.Labels[dc.key]]++
	}
}

// replace counts nu, the new NodeInfo at pos, instead of old: a node whose
// Instances changed is moved by its differences; counts whose domains or
// eligibility the change may move are dropped, to be made again when a
// decision needs them.
func (ix *domainIndex) replace(pos int, old, nu *NodeInfo) {
	nu.index, nu.pos = ix, pos
	if ix.stale || old.index != ix {
		return
	}
	old.index = nil
	sameNode := old.Node == nu.Node
	for memo, dc := range ix.counts {
		if !sameNode && (old.Node.Labels[dc.key] != nu.Node.Labels[dc.key] || dc.eligible != nil && dc.eligible(nu) != dc.eligibleAt[pos]) {
			delete(ix.counts, memo)
			continue
		}
		if dc.eligibleAt != nil && !dc.eligibleAt[pos] {
			continue
		}
		domain := nu.Node.Labels[dc.key]
		for _, placed := range old.Instances {
			if dc.selects(placed) {
				dc.byDomain[domain]--
			}
		}
		for _, placed := range nu.Instances {
			if dc.selects(placed) {
				dc.byDomain[domain]++
			}
		}
	}
}
