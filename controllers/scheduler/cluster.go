package scheduler

import (
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/types"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// The Cache's own view of the cluster, fed by the informers' events
// (SetNode, DeleteNode, SetInstance, DeleteInstance): the Nodes, the
// Instances holding room on each, the pending ones. Current turns it into
// the snapshot decisions read, rebuilding only the nodes that events or
// assumptions changed since the last one, so that a decision costs
// O(changed nodes), not O(Nodes + Instances) as Snapshot does. The
// snapshot's domain index is moved along (domainIndex.replace).

// view is the event-fed state; every field is guarded by Cache.mu.
type view struct {
	nodes  map[string]*skiffv1alpha1.Node
	onNode map[string]map[types.UID]*skiffv1alpha1.Instance
	// where is the node each Instance holding room is counted on.
	where   map[types.UID]string
	pending map[types.UID]*skiffv1alpha1.Instance
	// dirty are the nodes to rebuild; reshape says the node set changed.
	dirty   map[string]bool
	reshape bool
	snap    []*NodeInfo
	pos     map[string]int
}

func (v *view) init() {
	if v.nodes == nil {
		v.nodes = map[string]*skiffv1alpha1.Node{}
		v.onNode = map[string]map[types.UID]*skiffv1alpha1.Instance{}
		v.where = map[types.UID]string{}
		v.pending = map[types.UID]*skiffv1alpha1.Instance{}
		v.dirty = map[string]bool{}
	}
}

// touch marks a node to rebuild, once the view is fed.
func (v *view) touch(node string) {
	if v.dirty != nil {
		v.dirty[node] = true
	}
}

// SetNode records a Node added or changed.
func (c *Cache) SetNode(n *skiffv1alpha1.Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.view.init()
	if _, known := c.view.nodes[n.Name]; !known {
		c.view.reshape = true
	}
	c.view.nodes[n.Name] = n
	c.view.dirty[n.Name] = true
}

// DeleteNode records a Node gone.
func (c *Cache) DeleteNode(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.view.init()
	if _, known := c.view.nodes[name]; known {
		delete(c.view.nodes, name)
		c.view.reshape = true
	}
}

// SetInstance records an Instance added or changed: where it holds room
// (a bound Instance that has not finished), whether it is pending, and
// whether an assumption about it has been caught up with.
func (c *Cache) SetInstance(inst *skiffv1alpha1.Instance) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.view.init()
	c.unplace(inst.UID)
	if inst.Spec.NodeName != "" {
		c.drop(inst.UID) // caught up
		if !finished(inst) {
			on := c.view.onNode[inst.Spec.NodeName]
			if on == nil {
				on = map[types.UID]*skiffv1alpha1.Instance{}
				c.view.onNode[inst.Spec.NodeName] = on
			}
			on[inst.UID] = inst
			c.view.where[inst.UID] = inst.Spec.NodeName
			c.view.dirty[inst.Spec.NodeName] = true
		}
		return
	}
	if inst.DeletionTimestamp.IsZero() {
		c.view.pending[inst.UID] = inst
	}
}

// DeleteInstance records an Instance gone; an assumption about it ends.
func (c *Cache) DeleteInstance(inst *skiffv1alpha1.Instance) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.view.init()
	c.unplace(inst.UID)
	c.drop(inst.UID)
}

// unplace forgets where uid was counted and that it was pending.
func (c *Cache) unplace(uid types.UID) {
	if node, ok := c.view.where[uid]; ok {
		delete(c.view.onNode[node], uid)
		if len(c.view.onNode[node]) == 0 {
			delete(c.view.onNode, node)
		}
		delete(c.view.where, uid)
		c.view.dirty[node] = true
	}
	delete(c.view.pending, uid)
}

// Pending are the Instances waiting for a node (not being deleted), in
// no order.
func (c *Cache) Pending() []*skiffv1alpha1.Instance {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Collect(maps.Values(c.view.pending))
}

// Current is the snapshot of the fed view with the live assumptions, in
// node name order. It is the same slice from one call to the next, with
// the nodes that changed rebuilt: its callers hold it one at a time (the
// controller's decisions), and place on it only through NodeInfo.Add
// after assuming the placement.
func (c *Cache) Current() []*NodeInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.view.init()
	now := c.now()
	for uid, a := range c.assumed {
		if now.After(a.deadline) {
			c.drop(uid) // the bind's event was lost
		}
	}
	v := &c.view
	if v.reshape || v.snap == nil {
		names := make([]string, 0, len(v.nodes))
		for name := range v.nodes {
			names = append(names, name)
		}
		slices.SortFunc(names, strings.Compare)
		v.snap = make([]*NodeInfo, len(names))
		v.pos = make(map[string]int, len(names))
		for i, name := range names {
			v.snap[i] = c.nodeInfo(name)
			v.pos[name] = i
		}
		v.reshape = false
		clear(v.dirty)
		return v.snap
	}
	// The index moves along only if it is this slice's (a decision over
	// Reserve's copy of it indexes the copy).
	var ix *domainIndex
	if len(v.snap) > 0 {
		if cand := v.snap[0].index; cand != nil && cand.owns(v.snap) {
			ix = cand
		}
	}
	for name := range v.dirty {
		i, ok := v.pos[name]
		if !ok {
			continue // an Instance bound to a node the cache does not know
		}
		old, nu := v.snap[i], c.nodeInfo(name)
		v.snap[i] = nu
		if ix != nil {
			ix.replace(i, old, nu)
		}
	}
	clear(v.dirty)
	return v.snap
}

// nodeInfo is a node with the Instances holding room on it and the live
// assumptions placing Instances there.
func (c *Cache) nodeInfo(name string) *NodeInfo {
	n := NewNodeInfo(c.view.nodes[name])
	for _, inst := range c.view.onNode[name] {
		n.Add(inst)
	}
	for uid, placed := range c.assumedOn[name] {
		if _, bound := c.view.where[uid]; !bound {
			n.Add(placed)
		}
	}
	return n
}
