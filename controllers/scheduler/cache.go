package scheduler

import (
	"sort"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// Cache remembers the Instances the scheduler has bound but the informer
// does not show bound yet ("assumed"), so that binds in quick succession
// never over-commit a node. An assumption ends when the informer shows the
// Instance bound, when it is forgotten (the bind failed), or after its TTL
// (the bind's event was lost: the informer is the truth again).
type Cache struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	assumed map[types.UID]assumption
	// assumedOn indexes assumed by node, for rebuilding one node.
	assumedOn map[string]map[types.UID]*skiffv1alpha1.Instance
	// view is the cluster as events told it (cluster.go).
	view view
}

type assumption struct {
	inst     *skiffv1alpha1.Instance // with spec.nodeName set
	deadline time.Time
}

// NewCache returns a cache whose assumptions last ttl.
func NewCache(ttl time.Duration) *Cache {
	return &Cache{ttl: ttl, now: time.Now, assumed: map[types.UID]assumption{}, assumedOn: map[string]map[types.UID]*skiffv1alpha1.Instance{}}
}

// Assume records inst as placed on node.
func (c *Cache) Assume(inst *skiffv1alpha1.Instance, node string) {
	placed := inst.DeepCopy()
	placed.Spec.NodeName = node
	c.mu.Lock()
	defer c.mu.Unlock()
	c.drop(inst.UID)
	c.assumed[inst.UID] = assumption{inst: placed, deadline: c.now().Add(c.ttl)}
	if c.assumedOn[node] == nil {
		c.assumedOn[node] = map[types.UID]*skiffv1alpha1.Instance{}
	}
	c.assumedOn[node][inst.UID] = placed
	c.view.touch(node)
}

// drop ends an assumption, if any, and marks its node to rebuild.
func (c *Cache) drop(uid types.UID) {
	a, ok := c.assumed[uid]
	if !ok {
		return
	}
	node := a.inst.Spec.NodeName
	delete(c.assumed, uid)
	delete(c.assumedOn[node], uid)
	if len(c.assumedOn[node]) == 0 {
		delete(c.assumedOn, node)
	}
	c.view.touch(node)
}

// AssumedNode returns the node inst's live assumption placed it on.
func (c *Cache) AssumedNode(uid types.UID) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := c.assumed[uid]
	if !ok || c.now().After(a.deadline) {
		return "", false
	}
	return a.inst.Spec.NodeName, true
}

// Forget drops an assumption, e.g. after its bind failed.
func (c *Cache) Forget(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.drop(uid)
}

// Assumed counts the live assumptions.
func (c *Cache) Assumed() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.assumed)
}

// Snapshot places instances (as the informer shows them) and the live
// assumptions on nodes, in node name order. Instances that have finished
// (Succeeded, Failed but not preempted) hold nothing. Assumptions the informer has caught up
// with, or that expired, are dropped.
func (c *Cache) Snapshot(nodes []*skiffv1alpha1.Node, instances []*skiffv1alpha1.Instance) []*NodeInfo {
	byName := make(map[string]*NodeInfo, len(nodes))
	out := make([]*NodeInfo, 0, len(nodes))
	for _, n := range nodes {
		info := NewNodeInfo(n)
		byName[n.Name] = info
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node.Name < out[j].Node.Name })
	place := func(inst *skiffv1alpha1.Instance) {
		if n, ok := byName[inst.Spec.NodeName]; ok && !finished(inst) {
			n.Add(inst)
		}
	}
	seen := make(map[types.UID]bool, len(instances))
	for _, inst := range instances {
		seen[inst.UID] = inst.Spec.NodeName != ""
		place(inst)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for uid, a := range c.assumed {
		bound, known := seen[uid]
		switch {
		case bound, now.After(a.deadline):
			c.drop(uid) // caught up, or lost
		case known:
			place(a.inst)
		default:
			// The informer no longer has the Instance: deleted.
			c.drop(uid)
		}
	}
	return out
}

// finished reports whether an Instance holds nothing on its node any more.
// A preempted Instance is Failed from the moment the scheduler evicts it,
// but its containers run until the node agent has stopped them and let the
// object go: it holds its room until it is deleted, so that the preemptor
// is not bound beside it.
func finished(inst *skiffv1alpha1.Instance) bool {
	switch inst.Status.Phase {
	case skiffv1alpha1.InstanceSucceeded:
		return true
	case skiffv1alpha1.InstanceFailed:
		return inst.Status.Reason != skiffv1alpha1.ReasonPreempted
	}
	return false
}
