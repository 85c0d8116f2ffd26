package scheduler

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// TestDomainIndexAgreesWithAFreshCount is a property test: after a random
// sequence of placements and decisions on one snapshot, every count the
// index keeps up to date equals one made from scratch over the same
// nodes, and every decision equals the one taken on a fresh copy of the
// snapshot (which counts from scratch).
func TestDomainIndexAgreesWithAFreshCount(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) { checkDomainIndex(t, seed) })
	}
}

func checkDomainIndex(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 99))
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	var nodes []*NodeInfo
	for i := range 30 + rng.IntN(40) {
		n := node(fmt.Sprintf("n%02d", i), "64", "256Gi", func(n *skiffv1alpha1.Node) {
			if rng.IntN(6) > 0 {
				n.Labels["zone"] = pick("a", "b", "c", "d")
			}
			n.Labels["disk"] = pick("ssd", "hdd")
			if rng.IntN(8) == 0 {
				n.Status.Conditions = nil // not ready
			}
		})
		nodes = append(nodes, NewNodeInfo(n))
	}
	newInstance := func(i int) *skiffv1alpha1.Instance {
		inst := instance(fmt.Sprintf("i%d", i), "100m", "64Mi", func(inst *skiffv1alpha1.Instance) {
			inst.UID = types.UID(fmt.Sprint(i))
			inst.Namespace = pick("default", "other")
			inst.Labels = map[string]string{"app": pick("web", "db", "cache")}
		})
		sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": pick("web", "db")}}
		switch rng.IntN(5) {
		case 0:
			inst.Spec.TopologySpreadConstraints = []skiffv1alpha1.TopologySpreadConstraint{{
				MaxSkew: int32(1 + rng.IntN(2)), TopologyKey: "zone", LabelSelector: sel,
				WhenUnsatisfiable: skiffv1alpha1.UnsatisfiableConstraintAction(pick(string(skiffv1alpha1.DoNotSchedule), string(skiffv1alpha1.ScheduleAnyway))),
			}}
			if rng.IntN(2) == 0 {
				inst.Spec.NodeSelector = map[string]string{"disk": pick("ssd", "hdd")}
			}
		case 1:
			inst.Spec.Affinity = &skiffv1alpha1.Affinity{InstanceAntiAffinity: &skiffv1alpha1.InstanceAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: []skiffv1alpha1.InstanceAffinityTerm{{LabelSelector: sel, TopologyKey: "zone"}},
			}}
		case 2:
			inst.Spec.Affinity = &skiffv1alpha1.Affinity{InstanceAffinity: &skiffv1alpha1.InstanceAffinity{
				PreferredDuringSchedulingIgnoredDuringExecution: []skiffv1alpha1.WeightedInstanceAffinityTerm{{Weight: 10,
					InstanceAffinityTerm: skiffv1alpha1.InstanceAffinityTerm{LabelSelector: sel, TopologyKey: pick("zone", "disk")}}},
			}}
		}
		return inst
	}
	s, fresh := New(Spread), New(Spread)
	for i := range 300 {
		inst := newInstance(i)
		if rng.IntN(3) == 0 {
			// Placed without a decision, as the informer reports a bind.
			n := nodes[rng.IntN(len(nodes))]
			placed := inst.DeepCopy()
			placed.Spec.NodeName = n.Node.Name
			n.Add(placed)
		} else {
			got := s.Schedule(inst, nodes)
			want := fresh.Schedule(inst, copyNodes(nodes))
			if got.Feasible != want.Feasible || got.Score != want.Score || !maps.Equal(got.PerNode, want.PerNode) {
				t.Fatalf("step %d, %s: indexed decision %+v, fresh %+v", i, inst.Name, got, want)
			}
			if got.Node != "" {
				placed := inst.DeepCopy()
				placed.Spec.NodeName = got.Node
				for _, n := range nodes {
					if n.Node.Name == got.Node {
						n.Add(placed)
					}
				}
			}
		}
		ix := indexOf(nodes)
		for memo, dc := range ix.counts {
			scratch := *dc
			scratch.fill(nodes, false)
			if !maps.Equal(dc.byDomain, scratch.byDomain) {
				t.Fatalf("step %d: count %q is %v, from scratch %v", i, memo, dc.byDomain, scratch.byDomain)
			}
		}
	}
	if len(indexOf(nodes).counts) == 0 {
		t.Fatal("no decision used the index")
	}
}

// copyNodes is a new snapshot of the same nodes and Instances.
func copyNodes(nodes []*NodeInfo) []*NodeInfo {
	out := make([]*NodeInfo, len(nodes))
	for i, n := range nodes {
		out[i] = NewNodeInfo(n.Node, n.Instances...)
	}
	return out
}
