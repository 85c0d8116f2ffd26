package workload

import (
	"math/rand/v2"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

func TestCompare(t *testing.T) {
	w := workloadOf(4, "img:2")
	cur := Revision(&w.Spec.Template)
	tests := []struct {
		name      string
		replicas  int32
		insts     []*skiffv1alpha1.Instance
		add, mod  int32
		del, repl int32
		urgency   skiffv1alpha1.Urgency
	}{
		{"nothing yet", 4, nil, 4, 0, 0, 0, skiffv1alpha1.UrgencyCritical},
		{"in step", 4, instances(4, instState{rev: cur, ready: true}), 0, 0, 0, 0, skiffv1alpha1.UrgencyNone},
		{"starting", 4, join(instances(3, instState{rev: cur, ready: true}), instances(1, instState{rev: cur})), 0, 0, 0, 0, skiffv1alpha1.UrgencyLow},
		{"scale up", 6, instances(4, instState{rev: cur, ready: true}), 2, 0, 0, 0, skiffv1alpha1.UrgencyHigh},
		{"scale down", 2, instances(4, instState{rev: cur, ready: true}), 0, 0, 2, 0, skiffv1alpha1.UrgencyMedium},
		{"out of date", 4, instances(4, instState{rev: "old", ready: true}), 0, 4, 0, 0, skiffv1alpha1.UrgencyMedium},
		{"below budget", 4, join(instances(2, instState{rev: cur, ready: true}), instances(2, instState{rev: cur, bound: true})), 0, 0, 0, 0, skiffv1alpha1.UrgencyHigh},
		{"failed", 4, join(instances(3, instState{rev: cur, ready: true}), instances(1, instState{rev: cur, phase: skiffv1alpha1.InstanceFailed})), 0, 0, 0, 1, skiffv1alpha1.UrgencyMedium},
		{"terminating count for nothing", 4, join(instances(4, instState{rev: cur, ready: true}), instances(2, instState{rev: "old", ready: true, terminating: true})), 0, 0, 0, 0, skiffv1alpha1.UrgencyNone},
		{"none ready", 2, instances(2, instState{rev: cur, bound: true}), 0, 0, 0, 0, skiffv1alpha1.UrgencyCritical},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := workloadOf(tt.replicas, "img:2")
			c := Compare(&Snapshot{Workload: w, Instances: tt.insts})
			if c.Additions != tt.add || c.Modifications != tt.mod || c.Deletions != tt.del || c.Replacements != tt.repl {
				t.Errorf("drift = +%d ~%d -%d r%d, want +%d ~%d -%d r%d", c.Additions, c.Modifications, c.Deletions, c.Replacements, tt.add, tt.mod, tt.del, tt.repl)
			}
			if c.Magnitude() != tt.add+tt.mod+tt.del+tt.repl {
				t.Errorf("magnitude = %d", c.Magnitude())
			}
			if c.Urgency != tt.urgency {
				t.Errorf("urgency = %s, want %s", c.Urgency, tt.urgency)
			}
		})
	}
}

func TestBudgets(t *testing.T) {
	tests := []struct {
		replicas       int32
		surge, unavail intstr.IntOrString
		wantS, wantU   int32
	}{
		{4, intstr.FromString("25%"), intstr.FromString("25%"), 1, 1},
		{10, intstr.FromString("25%"), intstr.FromString("25%"), 3, 2}, // surge rounds up, unavailable down
		{3, intstr.FromString("25%"), intstr.FromString("25%"), 1, 0},
		{1, intstr.FromInt32(0), intstr.FromInt32(0), 0, 1}, // both zero would block
		{5, intstr.FromInt32(2), intstr.FromString("100%"), 2, 5},
	}
	for _, tt := range tests {
		w := rolling(workloadOf(tt.replicas, "i"), tt.surge, tt.unavail)
		s, u := budgets(w, tt.replicas)
		if s != tt.wantS || u != tt.wantU {
			t.Errorf("%d replicas, %s/%s: budgets %d/%d, want %d/%d", tt.replicas, tt.surge.String(), tt.unavail.String(), s, u, tt.wantS, tt.wantU)
		}
	}
}

func TestPlan(t *testing.T) {
	w := workloadOf(4, "img:2")
	cur := Revision(&w.Spec.Template)
	one, zero := intstr.FromInt32(1), intstr.FromInt32(0)
	recreate := func(w *skiffv1alpha1.Workload) *skiffv1alpha1.Workload {
		w.Spec.Strategy.Type = skiffv1alpha1.RecreateStrategy
		return w
	}
	tests := []struct {
		name  string
		w     *skiffv1alpha1.Workload
		insts []*skiffv1alpha1.Instance
		want  map[ActionType]int
	}{
		{"create from nothing", workloadOf(3, "img:2"), nil, map[ActionType]int{Create: 3}},
		{"scale up at once", workloadOf(8, "img:2"), instances(4, instState{rev: cur, ready: true}), map[ActionType]int{Create: 4}},
		{"scale down", workloadOf(2, "img:2"), instances(4, instState{rev: cur, ready: true}), map[ActionType]int{Delete: 2}},
		{"scale to zero", workloadOf(0, "img:2"), instances(3, instState{rev: cur}), map[ActionType]int{Delete: 3}},
		{"rolling 1/1 first step", rolling(workloadOf(4, "img:2"), one, one), instances(4, instState{rev: "old", ready: true}), map[ActionType]int{Create: 1, Delete: 1}},
		{"rolling surge only", rolling(workloadOf(4, "img:2"), one, zero), instances(4, instState{rev: "old", ready: true}), map[ActionType]int{Create: 1}},
		{"rolling surge waits for readiness", rolling(workloadOf(4, "img:2"), one, zero),
			join(instances(4, instState{rev: "old", ready: true}), instances(1, instState{rev: cur, bound: true})), map[ActionType]int{}},
		{"rolling surge step after readiness", rolling(workloadOf(4, "img:2"), one, zero),
			join(instances(4, instState{rev: "old", ready: true}), instances(1, instState{rev: cur, ready: true})), map[ActionType]int{Delete: 1}},
		{"rolling unavailable only", rolling(workloadOf(4, "img:2"), zero, one), instances(4, instState{rev: "old", ready: true}), map[ActionType]int{Delete: 1}},
		{"rolling unready old go first and free", rolling(workloadOf(4, "img:2"), one, one),
			join(instances(2, instState{rev: "old", ready: true}), instances(2, instState{rev: "old", bound: true})), map[ActionType]int{Create: 1, Delete: 1}},
		{"recreate deletes the old", recreate(workloadOf(3, "img:2")), instances(3, instState{rev: "old", ready: true}), map[ActionType]int{Delete: 3}},
		{"recreate waits for the old to go", recreate(workloadOf(3, "img:2")), instances(3, instState{rev: "old", terminating: true}), map[ActionType]int{}},
		{"recreate creates after", recreate(workloadOf(3, "img:2")), nil, map[ActionType]int{Create: 3}},
		{"failed are replaced", workloadOf(3, "img:2"),
			join(instances(2, instState{rev: cur, ready: true}), instances(1, instState{rev: cur, phase: skiffv1alpha1.InstanceFailed})), map[ActionType]int{Replace: 1}},
		{"succeeded are replaced too", workloadOf(1, "img:2"), instances(1, instState{rev: cur, phase: skiffv1alpha1.InstanceSucceeded}), map[ActionType]int{Replace: 1}},
		{"failed beyond need are deleted", workloadOf(2, "img:2"),
			join(instances(2, instState{rev: cur, ready: true}), instances(2, instState{rev: cur, phase: skiffv1alpha1.InstanceFailed})), map[ActionType]int{Delete: 2}},
		{"in step", workloadOf(3, "img:2"), instances(3, instState{rev: cur, ready: true}), map[ActionType]int{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			actions := Plan(Compare(&Snapshot{Workload: tt.w, Instances: tt.insts}))
			got := count(actions)
			for _, typ := range []ActionType{Create, Delete, Replace} {
				if got[typ] != tt.want[typ] {
					t.Errorf("%s = %d, want %d (plan %+v)", typ, got[typ], tt.want[typ], got)
				}
			}
			for i := 1; i < len(actions); i++ {
				if order(actions[i-1].Type) > order(actions[i].Type) {
					t.Errorf("actions out of order: %s before %s", actions[i-1].Type, actions[i].Type)
				}
			}
			for _, a := range actions {
				if a.Instance != nil && a.Precondition != a.Instance.UID {
					t.Errorf("%s of %s without its UID precondition", a.Type, a.Instance.Name)
				}
				if a.Type != Delete && a.Revision != cur {
					t.Errorf("%s makes revision %q, want %q", a.Type, a.Revision, cur)
				}
			}
		})
	}
}

// TestDeletionOrder: unscheduled first, then not ready, then the newest.
func TestDeletionOrder(t *testing.T) {
	w := workloadOf(1, "img:2")
	cur := Revision(&w.Spec.Template)
	oldReady := instanceOf(instState{rev: cur, ready: true, age: 30})
	newReady := instanceOf(instState{rev: cur, ready: true, age: 1})
	unready := instanceOf(instState{rev: cur, bound: true, age: 40})
	unscheduled := instanceOf(instState{rev: cur, age: 50})
	c := Compare(&Snapshot{Workload: w, Instances: []*skiffv1alpha1.Instance{oldReady, newReady, unready, unscheduled}})
	var got []string
	for _, a := range Plan(c) {
		got = append(got, a.Instance.Name)
	}
	want := []string{unscheduled.Name, unready.Name, newReady.Name}
	if len(got) != len(want) {
		t.Fatalf("deleted %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("deleted %v, want %v", got, want)
		}
	}
}

// TestPlanKeepsBudgets drives random rollouts and scalings through PLAN,
// with Instances becoming ready or failing at random between steps, and
// checks every step: no step deletes ready Instances below
// replicas-maxUnavailable (unless they were already below), and no step
// creates beyond replicas+maxSurge. Every run must also converge once the
// template settles.
func TestPlanKeepsBudgets(t *testing.T) {
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 7))
		checkRollouts(t, rng, seed)
	}
}

func checkRollouts(t *testing.T, rng *rand.Rand, seed uint64) {
	bound := func() intstr.IntOrString {
		if rng.IntN(2) == 0 {
			return intstr.FromInt32(int32(rng.IntN(4)))
		}
		return intstr.FromString([]string{"0%", "10%", "25%", "50%", "100%"}[rng.IntN(5)])
	}
	w := rolling(workloadOf(int32(rng.IntN(10)), "img:0"), bound(), bound())
	var insts []*skiffv1alpha1.Instance
	version := 0
	for step := range 80 {
		settled := step >= 50
		if !settled && rng.IntN(6) == 0 {
			version++
			w.Spec.Template.Spec.Containers[0].Image = "img:" + string(rune('0'+version%10))
		}
		if !settled && rng.IntN(8) == 0 {
			w.Spec.Replicas = ptrInt32(int32(rng.IntN(10)))
		}
		c := Compare(&Snapshot{Workload: w, Instances: insts})
		actions := Plan(c)
		readyBefore, alive := c.Ready(), c.Alive()
		var created int32
		deleted := map[string]bool{}
		for _, a := range actions {
			if a.Instance != nil {
				deleted[a.Instance.Name] = true
				if Ready(a.Instance) && !a.Instance.Finished() {
					readyBefore--
				}
				if !a.Instance.Finished() {
					alive--
				}
			}
			if a.Type != Delete {
				created++
			}
		}
		if floor := min(c.Ready(), c.MinAvailable()); readyBefore < floor {
			t.Fatalf("seed %d step %d: plan leaves %d ready, below %d (replicas %d, maxUnavailable %d)", seed, step, readyBefore, floor, c.Replicas, c.MaxUnavailable)
		}
		if created > 0 && alive+created > c.Replicas+c.MaxSurge {
			t.Fatalf("seed %d step %d: plan makes %d live instances, above %d+%d", seed, step, alive+created, c.Replicas, c.MaxSurge)
		}
		// Apply: deletions finish at once, creations start unscheduled.
		var next []*skiffv1alpha1.Instance
		for _, inst := range insts {
			if !deleted[inst.Name] {
				next = append(next, inst)
			}
		}
		for range created {
			next = append(next, instanceOf(instState{rev: c.UpdateRevision}))
		}
		// The world moves: some Instances start, some become ready, a few fail.
		for _, inst := range next {
			switch r := rng.IntN(20); {
			case settled && !inst.Finished():
				*inst = *instanceOf(instState{rev: inst.Labels[skiffv1alpha1.RevisionLabel], ready: true})
			case r < 8 && !inst.Finished():
				name := inst.Name
				*inst = *instanceOf(instState{rev: inst.Labels[skiffv1alpha1.RevisionLabel], ready: true})
				inst.Name = name
			case r == 19:
				inst.Status.Phase = skiffv1alpha1.InstanceFailed
			}
		}
		insts = next
	}
	c := Compare(&Snapshot{Workload: w, Instances: insts})
	if c.Magnitude() != 0 || c.Ready() != c.Replicas {
		t.Fatalf("seed %d: no convergence after the template settled: %+v drift %d, ready %d of %d", seed, count(Plan(c)), c.Magnitude(), c.Ready(), c.Replicas)
	}
}

func ptrInt32(v int32) *int32 { return &v }

// TestMinReadySeconds: an Instance counts as available only once it has
// been Ready for minReadySeconds; until then a rolling update waits, and
// the controller knows when to look again.
func TestMinReadySeconds(t *testing.T) {
	one, zero := intstr.FromInt32(1), intstr.FromInt32(0)
	w := rolling(workloadOf(4, "img:2"), one, zero)
	w.Spec.MinReadySeconds = 30
	cur := Revision(&w.Spec.Template)
	fresh := instanceOf(instState{rev: cur, ready: true})
	fresh.Status.Conditions[0].LastTransitionTime = metav1.NewTime(epoch.Add(-10 * time.Second))
	insts := join(instances(4, instState{rev: "old", ready: true}), []*skiffv1alpha1.Instance{fresh})

	c := Compare(&Snapshot{Workload: w, Instances: insts, Now: epoch})
	if got := count(Plan(c)); len(got) != 0 {
		t.Errorf("plan while the new Instance has been ready 10 of 30 s: %v, want nothing", got)
	}
	if c.Ready() != 5 || c.Available() != 4 || c.NextAvailable() != 20*time.Second {
		t.Errorf("ready %d available %d next %s; want 5, 4 and 20s", c.Ready(), c.Available(), c.NextAvailable())
	}
	if st := Observe(w, c, nil, "app=web", epoch).Status; st.ReadyReplicas != 5 || st.AvailableReplicas != 4 {
		t.Errorf("status ready %d available %d; want 5 and 4", st.ReadyReplicas, st.AvailableReplicas)
	}
	c = Compare(&Snapshot{Workload: w, Instances: insts, Now: epoch.Add(20 * time.Second)})
	if got := count(Plan(c)); got[Delete] != 1 {
		t.Errorf("plan once it has been ready 30 s: %v, want one old Instance deleted", got)
	}
}
