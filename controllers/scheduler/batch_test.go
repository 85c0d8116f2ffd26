package scheduler

import (
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// TestPlaceBatch: one decision places other pending Instances of its
// priority on the same snapshot, each seeing those before it: never more
// on a node than fits, the ones that fit nowhere left to their own
// decision, other priorities left alone, and no batch at all while a
// nomination is pending.
func TestPlaceBatch(t *testing.T) {
	nodes := infos(node("n1", "4", "4Gi"), node("n2", "4", "4Gi"), node("n3", "4", "4Gi"))
	var pending []*skiffv1alpha1.Instance
	for i := range 13 { // 13 cpu asked of 12
		inst := instance(fmt.Sprintf("i%d", i), "1", "")
		inst.UID = types.UID(inst.Name)
		pending = append(pending, inst)
	}
	urgent := instance("urgent", "1", "", func(i *skiffv1alpha1.Instance) { i.UID, i.Spec.Priority = "urgent", ptr.To[int32](100) })
	all := append(pending, urgent)

	c := &Controller{Scheduler: New(Spread), Cache: NewCache(time.Minute)}
	c.Cache.Assume(pending[0], "n1")
	c.placeBatch(pending[0], "n1", nodes, all)

	perNode := map[string]int{}
	left := 0
	for _, inst := range pending {
		if n, ok := c.Cache.AssumedNode(inst.UID); ok {
			perNode[n]++
		} else {
			left++
		}
	}
	for n, count := range perNode {
		if count > 4 {
			t.Errorf("%d Instances of 1 cpu on %s of 4 cpu", count, n)
		}
	}
	if left != 1 || len(perNode) != 3 {
		t.Errorf("placed %v with %d left, want 12 over the three nodes and 1 left for its own decision", perNode, left)
	}
	if _, ok := c.Cache.AssumedNode(urgent.UID); ok {
		t.Error("an Instance of another priority was batched")
	}

	// A pending nomination reserves room per priority: no batch.
	c = &Controller{Scheduler: New(Spread), Cache: NewCache(time.Minute)}
	nominated := instance("nominated", "1", "", func(i *skiffv1alpha1.Instance) { i.UID, i.Status.NominatedNodeName = "nominated", "n2" })
	c.Cache.Assume(pending[0], "n1")
	c.placeBatch(pending[0], "n1", infos(node("n1", "4", "4Gi"), node("n2", "4", "4Gi")), append(pending, nominated))
	if n := c.Cache.Assumed(); n != 1 {
		t.Errorf("%d placements assumed with a nomination pending, want only the decided one", n)
	}
}
