package workload

import "testing"

// BenchmarkPlanScalingUp compares and plans a Workload of 100 replicas
// with half of them Running and ready, as it is reconciled on each of its
// Instances' events while it scales up.
func BenchmarkPlanScalingUp(b *testing.B) {
	w := workloadOf(100, "registry.local/web:1")
	rev := Revision(&w.Spec.Template)
	snap := &Snapshot{Workload: w, Now: epoch,
		Instances: join(instances(50, instState{rev: rev, ready: true}), instances(20, instState{rev: rev, bound: true}), instances(10, instState{rev: rev}))}
	for b.Loop() {
		if actions := Plan(Compare(snap)); len(actions) != 20 {
			b.Fatalf("%d actions, want 20 creates", len(actions))
		}
	}
}
