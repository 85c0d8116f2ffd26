package workload

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/utils/ptr"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

func TestProgressed(t *testing.T) {
	base := skiffv1alpha1.WorkloadStatus{ObservedGeneration: 2, UpdateRevision: "r", Replicas: 4, ReadyReplicas: 3, UpdatedReplicas: 2, AvailableReplicas: 3}
	tests := []struct {
		name   string
		change func(*skiffv1alpha1.WorkloadStatus)
		want   bool
	}{
		{"nothing", func(*skiffv1alpha1.WorkloadStatus) {}, false},
		{"new generation", func(s *skiffv1alpha1.WorkloadStatus) { s.ObservedGeneration++ }, true},
		{"one more updated", func(s *skiffv1alpha1.WorkloadStatus) { s.UpdatedReplicas++; s.Replicas++ }, true},
		{"one more ready", func(s *skiffv1alpha1.WorkloadStatus) { s.ReadyReplicas++; s.AvailableReplicas++ }, true},
		{"one old fewer", func(s *skiffv1alpha1.WorkloadStatus) { s.Replicas-- }, true},
		// Losses are not progress: a crash-looping rollout must stall.
		{"one ready fewer", func(s *skiffv1alpha1.WorkloadStatus) { s.ReadyReplicas--; s.AvailableReplicas-- }, false},
		{"an updated one lost", func(s *skiffv1alpha1.WorkloadStatus) { s.UpdatedReplicas--; s.Replicas-- }, false},
	}
	for _, tt := range tests {
		st := base
		tt.change(&st)
		if got := progressed(&base, &st); got != tt.want {
			t.Errorf("%s: progressed = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestObserveStall: a rollout that does not progress for the deadline is
// Progressing=False once, and the deadline is reported while it runs.
func TestObserveStall(t *testing.T) {
	w := workloadOf(2, "img:2")
	w.Spec.ProgressDeadlineSeconds = ptr.To[int32](60)
	cur := Revision(&w.Spec.Template)
	insts := join(instances(2, instState{rev: "old", ready: true}), instances(1, instState{rev: cur, bound: true}))
	c := Compare(&Snapshot{Workload: w, Instances: insts})
	o := Observe(w, c, Plan(c), "app=web", epoch)
	if o.Deadline != epoch.Add(time.Minute) || o.Stalled || o.Complete {
		t.Fatalf("first look: deadline %v stalled %v complete %v", o.Deadline, o.Stalled, o.Complete)
	}
	w.Status = o.Status
	o = Observe(w, c, Plan(c), "app=web", epoch.Add(61*time.Second))
	cond := meta.FindStatusCondition(o.Status.Conditions, skiffv1alpha1.WorkloadProgressing)
	if !o.Stalled || cond.Reason != ReasonDeadlineExceeded {
		t.Fatalf("after the deadline: stalled %v, condition %+v", o.Stalled, cond)
	}
	w.Status = o.Status
	if o = Observe(w, c, Plan(c), "app=web", epoch.Add(62*time.Second)); o.Stalled {
		t.Fatal("the stall is told twice")
	}
}

// TestObserveLastAvailable: a template counts as available only when it
// ran ready replicas; at zero replicas nothing proves it.
func TestObserveLastAvailable(t *testing.T) {
	w := workloadOf(2, "img:1")
	cur := Revision(&w.Spec.Template)
	c := Compare(&Snapshot{Workload: w, Instances: instances(2, instState{rev: cur, ready: true})})
	if o := Observe(w, c, nil, "", epoch); o.Status.LastAvailableRevision != cur || !o.Complete {
		t.Fatalf("all ready: last available %q, want %q", o.Status.LastAvailableRevision, cur)
	}
	zero := workloadOf(0, "broken:1")
	c = Compare(&Snapshot{Workload: zero})
	if o := Observe(zero, c, nil, "", epoch); o.Status.LastAvailableRevision != "" || o.RolloutCompleted {
		t.Fatalf("zero replicas: last available %q, rollout completed %v", o.Status.LastAvailableRevision, o.RolloutCompleted)
	}
	// Recreate needs every replica ready to be Available.
	re := workloadOf(3, "img:1")
	re.Spec.Strategy.Type = skiffv1alpha1.RecreateStrategy
	cur = Revision(&re.Spec.Template)
	c = Compare(&Snapshot{Workload: re, Instances: join(instances(2, instState{rev: cur, ready: true}), instances(1, instState{rev: cur, bound: true}))})
	o := Observe(re, c, nil, "", epoch)
	if meta.IsStatusConditionTrue(o.Status.Conditions, skiffv1alpha1.WorkloadAvailable) {
		t.Fatal("Recreate with 2 of 3 ready is Available")
	}
}
