package scheduler

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

func withUID(inst *skiffv1alpha1.Instance, uid string) *skiffv1alpha1.Instance {
	inst.UID = types.UID(uid)
	return inst
}

// TestCacheNoOvercommit: two Instances scheduled before the informer shows
// the first one bound do not both land on a node with room for one.
func TestCacheNoOvercommit(t *testing.T) {
	c := NewCache(30 * time.Second)
	nodes := []*skiffv1alpha1.Node{node("a", "1", "4Gi"), node("b", "1", "4Gi")}
	first, second := withUID(instance("first", "800m", ""), "1"), withUID(instance("second", "800m", ""), "2")
	pending := []*skiffv1alpha1.Instance{first, second}
	s := New(Spread)

	res := s.Schedule(first, c.Snapshot(nodes, pending))
	if res.Node == "" {
		t.Fatalf("first does not fit: %s", res.Message(2))
	}
	c.Assume(first, res.Node)
	// The informer still shows first unbound.
	res2 := s.Schedule(second, c.Snapshot(nodes, pending))
	if res2.Node == "" || res2.Node == res.Node {
		t.Fatalf("second went to %q after first was assumed on %q: want the other node", res2.Node, res.Node)
	}

	// The informer catches up: first is bound; it counts once, not twice.
	bound := first.DeepCopy()
	bound.Spec.NodeName = res.Node
	infos := c.Snapshot(nodes, []*skiffv1alpha1.Instance{bound, second})
	for _, n := range infos {
		if n.Node.Name == res.Node && len(n.Instances) != 1 {
			t.Errorf("node %s holds %d instances, want first once", n.Node.Name, len(n.Instances))
		}
	}
	if c.Assumed() != 0 {
		t.Errorf("%d assumptions left after the informer caught up", c.Assumed())
	}
}

func TestCacheExpiryAndForget(t *testing.T) {
	c := NewCache(time.Minute)
	now := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	c.now = func() time.Time { return now }
	nodes := []*skiffv1alpha1.Node{node("a", "1", "4Gi")}
	inst := withUID(instance("i", "800m", ""), "1")
	c.Assume(inst, "a")
	if got := len(c.Snapshot(nodes, []*skiffv1alpha1.Instance{inst})[0].Instances); got != 1 {
		t.Fatalf("assumed instance not placed: %d", got)
	}
	now = now.Add(2 * time.Minute)
	if got := len(c.Snapshot(nodes, []*skiffv1alpha1.Instance{inst})[0].Instances); got != 0 || c.Assumed() != 0 {
		t.Errorf("expired assumption still placed (%d) or kept (%d)", got, c.Assumed())
	}
	c.Assume(inst, "a")
	c.Forget(inst.UID)
	if c.Assumed() != 0 {
		t.Error("forgotten assumption kept")
	}
	// An Instance the informer no longer has (deleted) drops its assumption.
	c.Assume(inst, "a")
	c.Snapshot(nodes, []*skiffv1alpha1.Instance{withUID(instance("other", "", ""), "2")})
	if c.Assumed() != 0 {
		t.Error("assumption of a deleted instance kept")
	}
}

func TestFinishedInstancesHoldNothing(t *testing.T) {
	c := NewCache(time.Minute)
	done := withUID(instance("done", "1", ""), "1")
	done.Spec.NodeName = "a"
	done.Status.Phase = skiffv1alpha1.InstanceSucceeded
	infos := c.Snapshot([]*skiffv1alpha1.Node{node("a", "1", "4Gi")}, []*skiffv1alpha1.Instance{done})
	if res := New(Spread).Schedule(instance("next", "1", ""), infos); res.Node != "a" {
		t.Errorf("a finished instance still holds its cpu: %s", res.Message(1))
	}
}

// TestPreemptedInstancesHoldUntilDeleted: a preempted victim is Failed at
// once but its containers still run; its room is free only once it is gone.
func TestPreemptedInstancesHoldUntilDeleted(t *testing.T) {
	c := NewCache(time.Minute)
	victim := withUID(instance("victim", "1", ""), "1")
	victim.Spec.NodeName = "a"
	victim.Status.Phase, victim.Status.Reason = skiffv1alpha1.InstanceFailed, skiffv1alpha1.ReasonPreempted
	nodes := []*skiffv1alpha1.Node{node("a", "1", "4Gi")}
	if res := New(Spread).Schedule(instance("next", "1", ""), c.Snapshot(nodes, []*skiffv1alpha1.Instance{victim})); res.Node != "" {
		t.Errorf("a preempted instance still on the node holds nothing: bound to %s", res.Node)
	}
	if res := New(Spread).Schedule(instance("next", "1", ""), c.Snapshot(nodes, nil)); res.Node != "a" {
		t.Errorf("room not free once the victim is gone: %s", res.Message(1))
	}
}
