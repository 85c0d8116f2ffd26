package scheduler

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// The placement benchmark has the shape of Nomad's own scheduler benchmark
// (scheduler/benchmarks in hashicorp/nomad), so that the two compare side
// by side on one machine: 5,000 nodes in 100 racks, 600 Instances each
// asking for what fits two to a node, required node affinity to half the
// racks; without a spread, with a soft (ScheduleAnyway) spread over racks,
// and with a hard (DoNotSchedule) one. Each placement is added to its
// node before the next is decided, as a batch of decisions does.
const (
	benchNodes     = 5000
	benchRacks     = 100
	benchInstances = 600
)

func benchCluster() []*NodeInfo {
	out := make([]*NodeInfo, benchNodes)
	for i := range out {
		n := node(fmt.Sprintf("node-%04d", i), "4", "8Gi")
		n.Labels["rack"] = fmt.Sprintf("r%02d", i%benchRacks)
		out[i] = NewNodeInfo(n)
	}
	return out
}

func benchInstance(i int, spread skiffv1alpha1.UnsatisfiableConstraintAction) *skiffv1alpha1.Instance {
	racks := make([]string, 0, benchRacks/2)
	for r := range benchRacks / 2 {
		racks = append(racks, fmt.Sprintf("r%02d", r))
	}
	inst := instance(fmt.Sprintf("web-%d", i), "2", "4Gi")
	inst.UID = types.UID(fmt.Sprint("uid-", i))
	inst.Spec.Affinity = &skiffv1alpha1.Affinity{NodeAffinity: &skiffv1alpha1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: &skiffv1alpha1.NodeSelector{NodeSelectorTerms: []skiffv1alpha1.NodeSelectorTerm{{
			MatchExpressions: []skiffv1alpha1.NodeSelectorRequirement{{Key: "rack", Operator: skiffv1alpha1.NodeSelectorOpIn, Values: racks}},
		}}},
	}}
	if spread != "" {
		inst.Spec.TopologySpreadConstraints = []skiffv1alpha1.TopologySpreadConstraint{{
			MaxSkew: 1, TopologyKey: "rack", WhenUnsatisfiable: spread,
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		}}
	}
	return inst
}

// placeAll places the Instances one after the other on nodes and returns
// how many went somewhere.
func placeAll(b *testing.B, s *Scheduler, nodes []*NodeInfo, insts []*skiffv1alpha1.Instance) int {
	byName := make(map[string]*NodeInfo, len(nodes))
	for _, n := range nodes {
		byName[n.Node.Name] = n
	}
	placed := 0
	for _, inst := range insts {
		res := s.Schedule(inst, nodes)
		if res.Node == "" {
			b.Fatalf("%s fits nowhere: %s", inst.Name, res.Message(len(nodes)))
		}
		p := inst.DeepCopy()
		p.Spec.NodeName = res.Node
		byName[res.Node].Add(p)
		placed++
	}
	return placed
}

func BenchmarkPlacement(b *testing.B) {
	for _, tc := range []struct {
		name   string
		spread skiffv1alpha1.UnsatisfiableConstraintAction
	}{
		{"plain", ""},
		{"soft-spread", skiffv1alpha1.ScheduleAnyway},
		{"hard-spread", skiffv1alpha1.DoNotSchedule},
	} {
		b.Run(tc.name, func(b *testing.B) {
			insts := make([]*skiffv1alpha1.Instance, benchInstances)
			for i := range insts {
				insts[i] = benchInstance(i, tc.spread)
			}
			s := New(Spread)
			s.Rand = rand.New(rand.NewPCG(1, 2))
			var mallocs uint64
			placed := 0
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				nodes := benchCluster()
				var before runtime.MemStats
				runtime.ReadMemStats(&before)
				b.StartTimer()
				placed += placeAll(b, s, nodes, insts)
				b.StopTimer()
				var after runtime.MemStats
				runtime.ReadMemStats(&after)
				mallocs += after.Mallocs - before.Mallocs
				b.StartTimer()
			}
			b.ReportMetric(float64(placed)/b.Elapsed().Seconds(), "placements/s")
			b.ReportMetric(float64(mallocs)/float64(placed), "allocs/placement")
		})
	}
}
