package scheduler

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// TestIncrementalSnapshotAgreesWithAFullOne is a property test: after a
// random sequence of Node and Instance events, assumptions, forgotten
// binds, expiries and decisions, the event-fed cache's snapshot (rebuilt
// only where things changed) equals a snapshot built from scratch from
// the same Nodes, Instances and assumptions, and every domain count its
// index keeps equals one counted from scratch.
func TestIncrementalSnapshotAgreesWithAFullOne(t *testing.T) {
	for seed := range uint64(25) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) { checkIncremental(t, seed) })
	}
}

func checkIncremental(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	fed, ref := NewCache(10*time.Second), NewCache(10*time.Second)
	fed.now, ref.now = func() time.Time { return now }, func() time.Time { return now }
	nodes := map[string]*skiffv1alpha1.Node{}
	insts := map[types.UID]*skiffv1alpha1.Instance{}
	s := New(Spread)
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	nodeNames := func() []string { return slices.Sorted(maps.Keys(nodes)) }
	uids := func() []types.UID { return slices.Sorted(maps.Keys(insts)) }
	setNode := func(name string) {
		n := node(name, pick("2", "4"), "8Gi", func(n *skiffv1alpha1.Node) {
			n.Labels["zone"] = pick("a", "b", "c")
			if rng.IntN(6) == 0 {
				n.Status.Conditions = nil
			}
		})
		nodes[name] = n
		fed.SetNode(n)
	}
	setInstance := func(inst *skiffv1alpha1.Instance) {
		insts[inst.UID] = inst
		fed.SetInstance(inst)
	}
	for i := range 8 {
		setNode(fmt.Sprintf("n%d", i))
	}
	next := 0
	for step := range 400 {
		switch op := rng.IntN(12); {
		case op == 0 && len(nodes) < 12:
			setNode(fmt.Sprintf("n%d", 8+rng.IntN(8)))
		case op == 1 && len(nodes) > 2:
			name := pick(nodeNames()...)
			delete(nodes, name)
			fed.DeleteNode(name)
		case op == 2:
			setNode(pick(nodeNames()...))
		case op <= 5:
			next++
			inst := instance(fmt.Sprintf("i%d", next), pick("100m", "500m"), "256Mi", func(i *skiffv1alpha1.Instance) {
				i.UID = types.UID(fmt.Sprint(next))
				i.Labels = map[string]string{"app": pick("web", "db")}
				if rng.IntN(3) == 0 {
					i.Spec.TopologySpreadConstraints = []skiffv1alpha1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: "zone",
						WhenUnsatisfiable: skiffv1alpha1.UnsatisfiableConstraintAction(pick(string(skiffv1alpha1.DoNotSchedule), string(skiffv1alpha1.ScheduleAnyway))),
						LabelSelector:     &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}}
				}
			})
			if rng.IntN(3) == 0 {
				inst.Spec.NodeName = pick(nodeNames()...) // bound elsewhere
			}
			setInstance(inst)
		case op == 6 && len(insts) > 0:
			uid := pick(stringsOf(uids())...)
			fed.DeleteInstance(insts[types.UID(uid)])
			delete(insts, types.UID(uid))
		case op == 7 && len(insts) > 0:
			// A bind's event, a finish, or a nomination.
			cur := insts[types.UID(pick(stringsOf(uids())...))].DeepCopy()
			switch {
			case cur.Spec.NodeName == "":
				if a, ok := fed.AssumedNode(cur.UID); ok && rng.IntN(2) == 0 {
					cur.Spec.NodeName = a
				} else {
					cur.Spec.NodeName = pick(nodeNames()...)
				}
			case rng.IntN(2) == 0:
				cur.Status.Phase = skiffv1alpha1.InstanceSucceeded
			}
			setInstance(cur)
		case op == 8:
			now = now.Add(time.Duration(rng.IntN(6)) * time.Second)
		default:
			// A decision on the incremental snapshot, assumed in both.
			var pending []*skiffv1alpha1.Instance
			for _, uid := range uids() {
				if insts[uid].Spec.NodeName == "" {
					if _, ok := fed.AssumedNode(uid); !ok {
						pending = append(pending, insts[uid])
					}
				}
			}
			if len(pending) == 0 {
				continue
			}
			inst := pending[rng.IntN(len(pending))]
			infos := fed.Current()
			if res := s.Schedule(inst, infos); res.Node != "" {
				fed.Assume(inst, res.Node)
				ref.Assume(inst, res.Node)
				placed := inst.DeepCopy()
				placed.Spec.NodeName = res.Node
				findNode(infos, res.Node).Add(placed)
				if rng.IntN(4) == 0 {
					fed.Forget(inst.UID) // the bind failed
					ref.Forget(inst.UID)
				}
			}
		}
		got := fed.Current()
		want := ref.Snapshot(slices.Collect(maps.Values(nodes)), slices.Collect(maps.Values(insts)))
		if err := sameSnapshot(got, want); err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		if len(got) > 0 && got[0].index != nil && !got[0].index.stale {
			for memo, dc := range got[0].index.counts {
				scratch := *dc
				scratch.fill(got, false)
				if !maps.Equal(dc.byDomain, scratch.byDomain) {
					t.Fatalf("step %d: count %q is %v, from scratch %v", step, memo, dc.byDomain, scratch.byDomain)
				}
			}
		}
	}
}

func stringsOf(uids []types.UID) []string {
	out := make([]string, len(uids))
	for i, u := range uids {
		out[i] = string(u)
	}
	return out
}

// sameSnapshot compares two snapshots node by node: the Instances each
// holds and the resources they request.
func sameSnapshot(got, want []*NodeInfo) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d nodes, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Node != w.Node {
			return fmt.Errorf("node %d is %s (%p), want %s (%p)", i, g.Node.Name, g.Node, w.Node.Name, w.Node)
		}
		uidsOf := func(n *NodeInfo) []types.UID {
			var out []types.UID
			for _, inst := range n.Instances {
				out = append(out, inst.UID)
			}
			slices.Sort(out)
			return out
		}
		if !slices.Equal(uidsOf(g), uidsOf(w)) {
			return fmt.Errorf("node %s holds %v, want %v", g.Node.Name, uidsOf(g), uidsOf(w))
		}
		if g.requested.cpu != w.requested.cpu || g.requested.memory != w.requested.memory {
			return fmt.Errorf("node %s requests %d/%d, want %d/%d", g.Node.Name, g.requested.cpu, g.requested.memory, w.requested.cpu, w.requested.memory)
		}
	}
	return nil
}
