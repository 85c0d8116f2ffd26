package nodelifecycle

import (
	"slices"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

var t0 = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

// t0Frac is t0 with a fraction of a second, which the API would drop.
var t0Frac = t0.Add(300 * time.Millisecond)

func TestEvictionTime(t *testing.T) {
	taint := skiffv1alpha1.Taint{Key: skiffv1alpha1.TaintUnreachable, Effect: skiffv1alpha1.TaintEffectNoExecute}
	exists := func(key string, effect skiffv1alpha1.TaintEffect, seconds *int64) skiffv1alpha1.Toleration {
		return skiffv1alpha1.Toleration{Key: key, Operator: skiffv1alpha1.TolerationOpExists, Effect: effect, TolerationSeconds: seconds}
	}
	for _, tc := range []struct {
		name   string
		tols   []skiffv1alpha1.Toleration
		want   time.Time
		wantOK bool
	}{
		{"no toleration: at once", nil, t0, true},
		{"another key: at once", []skiffv1alpha1.Toleration{exists("dedicated", "", nil)}, t0, true},
		{"another effect: at once", []skiffv1alpha1.Toleration{exists(skiffv1alpha1.TaintUnreachable, skiffv1alpha1.TaintEffectNoSchedule, nil)}, t0, true},
		{"Equal with a value the taint lacks: at once", []skiffv1alpha1.Toleration{{Key: skiffv1alpha1.TaintUnreachable, Operator: skiffv1alpha1.TolerationOpEqual, Value: "x"}}, t0, true},
		{"the default 300 s", []skiffv1alpha1.Toleration{exists(skiffv1alpha1.TaintUnreachable, skiffv1alpha1.TaintEffectNoExecute, ptr.To(skiffv1alpha1.DefaultTolerationSeconds))}, t0.Add(300 * time.Second), true},
		{"zero seconds: at once", []skiffv1alpha1.Toleration{exists(skiffv1alpha1.TaintUnreachable, "", ptr.To[int64](0))}, t0, true},
		{"no seconds: never", []skiffv1alpha1.Toleration{exists(skiffv1alpha1.TaintUnreachable, skiffv1alpha1.TaintEffectNoExecute, nil)}, time.Time{}, false},
		{"keyless Exists tolerates everything for ever", []skiffv1alpha1.Toleration{exists("", "", nil)}, time.Time{}, false},
		{"Equal with the empty value matches", []skiffv1alpha1.Toleration{{Key: skiffv1alpha1.TaintUnreachable, Operator: skiffv1alpha1.TolerationOpEqual, TolerationSeconds: ptr.To[int64](5)}}, t0.Add(5 * time.Second), true},
		{"the smallest bound wins, also over an unbounded one", []skiffv1alpha1.Toleration{
			exists(skiffv1alpha1.TaintUnreachable, "", nil),
			exists(skiffv1alpha1.TaintUnreachable, skiffv1alpha1.TaintEffectNoExecute, ptr.To[int64](60)),
			exists("", "", ptr.To[int64](10)),
		}, t0.Add(10 * time.Second), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := evictionTime(tc.tols, taint, t0)
			if ok != tc.wantOK || !got.Equal(tc.want) {
				t.Errorf("evictionTime = %s, %v; want %s, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestEvictions(t *testing.T) {
	added := metav1.NewTime(t0)
	taint := skiffv1alpha1.Taint{Key: skiffv1alpha1.TaintUnreachable, Effect: skiffv1alpha1.TaintEffectNoExecute, TimeAdded: &added}
	inst := func(name string, seconds *int64, forever bool) skiffv1alpha1.Instance {
		i := skiffv1alpha1.Instance{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if seconds != nil || forever {
			i.Spec.Tolerations = []skiffv1alpha1.Toleration{{Key: skiffv1alpha1.TaintUnreachable, Operator: skiffv1alpha1.TolerationOpExists,
				Effect: skiffv1alpha1.TaintEffectNoExecute, TolerationSeconds: seconds}}
		}
		return i
	}
	failed := inst("failed", nil, false)
	failed.Status.Phase = skiffv1alpha1.InstanceFailed
	succeeded := inst("succeeded", nil, false)
	succeeded.Status.Phase = skiffv1alpha1.InstanceSucceeded
	deleting := inst("deleting", nil, false)
	deleting.DeletionTimestamp = &added
	all := []skiffv1alpha1.Instance{
		inst("intolerant", nil, false), inst("thirty", ptr.To[int64](30), false), inst("two", ptr.To[int64](2), false),
		inst("forever", nil, true), failed, succeeded, deleting,
	}
	names := func(insts []*skiffv1alpha1.Instance) []string {
		var out []string
		for _, i := range insts {
			out = append(out, i.Name)
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		now      time.Time
		wantDue  []string
		wantNext time.Time
	}{
		{"when tainted", t0, []string{"intolerant"}, t0.Add(2 * time.Second)},
		{"a second later", t0.Add(time.Second), []string{"intolerant"}, t0.Add(2 * time.Second)},
		{"two seconds on", t0.Add(2 * time.Second), []string{"intolerant", "two"}, t0.Add(30 * time.Second)},
		{"a minute on", t0.Add(time.Minute), []string{"intolerant", "thirty", "two"}, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			due, next := evictions(all, taint, tc.now)
			if got := names(due); !slices.Equal(got, tc.wantDue) || !next.Equal(tc.wantNext) {
				t.Errorf("evictions = %v, next %s; want %v, next %s", got, next, tc.wantDue, tc.wantNext)
			}
		})
	}
}

func TestUnreachableTaint(t *testing.T) {
	noSchedule := skiffv1alpha1.Taint{Key: "dedicated", Value: "gpu", Effect: skiffv1alpha1.TaintEffectNoSchedule}
	earlier := metav1.NewTime(t0.Add(-time.Minute))
	mine := skiffv1alpha1.Taint{Key: skiffv1alpha1.TaintUnreachable, Effect: skiffv1alpha1.TaintEffectNoExecute, TimeAdded: &earlier}

	taints, taint, changed := withTaint([]skiffv1alpha1.Taint{noSchedule}, skiffv1alpha1.TaintUnreachable, t0Frac)
	if !changed || len(taints) != 2 || taints[0] != noSchedule || !isTaint(skiffv1alpha1.TaintUnreachable)(taint) || !taint.TimeAdded.Time.Equal(t0) {
		t.Errorf("adding: %+v, %+v, %v; want the taint added at now in whole seconds, others kept", taints, taint, changed)
	}
	if _, taint, changed := withTaint([]skiffv1alpha1.Taint{noSchedule, mine}, skiffv1alpha1.TaintUnreachable, t0); changed || !taint.TimeAdded.Equal(&earlier) {
		t.Errorf("present: %+v, %v; want it kept with its timeAdded", taint, changed)
	}
	byHand := mine
	byHand.TimeAdded = nil
	if _, taint, changed := withTaint([]skiffv1alpha1.Taint{byHand}, skiffv1alpha1.TaintUnreachable, t0Frac); !changed || taint.TimeAdded == nil || !taint.TimeAdded.Time.Equal(t0) {
		t.Errorf("without timeAdded: %+v, %v; want timeAdded now", taint, changed)
	}
	sameKeyNoSchedule := skiffv1alpha1.Taint{Key: skiffv1alpha1.TaintUnreachable, Effect: skiffv1alpha1.TaintEffectNoSchedule}
	taints, had := withoutTaint([]skiffv1alpha1.Taint{noSchedule, mine, sameKeyNoSchedule}, skiffv1alpha1.TaintUnreachable)
	if !had || !slices.Equal(taints, []skiffv1alpha1.Taint{noSchedule, sameKeyNoSchedule}) {
		t.Errorf("removing: %+v, %v; want only the NoExecute unreachable taint gone", taints, had)
	}
	if _, had := withoutTaint([]skiffv1alpha1.Taint{noSchedule}, skiffv1alpha1.TaintUnreachable); had {
		t.Error("removing from a node without it reports a change")
	}
}

func TestMarkUnknown(t *testing.T) {
	s := skiffv1alpha1.NodeStatus{Phase: skiffv1alpha1.NodeReady, Conditions: []metav1.Condition{{
		Type: skiffv1alpha1.NodeConditionReady, Status: metav1.ConditionTrue, Reason: "AgentReady", LastTransitionTime: metav1.NewTime(t0),
	}}}
	if !markUnknown(&s, "not seen for 15s") {
		t.Fatal("a Ready node reported unchanged")
	}
	c := meta.FindStatusCondition(s.Conditions, skiffv1alpha1.NodeConditionReady)
	if s.Phase != skiffv1alpha1.NodeNotReady || c.Status != metav1.ConditionUnknown || c.Reason != ReasonNodeStatusUnknown || c.Message != "not seen for 15s" {
		t.Errorf("status %+v; want NotReady, Ready=Unknown/%s", s, ReasonNodeStatusUnknown)
	}
	if markUnknown(&s, "not seen for 20s") {
		t.Error("an unknown node reported changed by a new age in the message: every pass would write")
	}
}

func TestUnclaimed(t *testing.T) {
	now := metav1.NewTime(t0)
	inst := func(name string, deleting bool, change func(*skiffv1alpha1.Instance)) skiffv1alpha1.Instance {
		i := skiffv1alpha1.Instance{ObjectMeta: metav1.ObjectMeta{Name: name, Finalizers: []string{skiffv1alpha1.AgentFinalizer}}}
		if deleting {
			i.DeletionTimestamp = &now
		}
		if change != nil {
			change(&i)
		}
		return i
	}
	got := unclaimed([]skiffv1alpha1.Instance{
		inst("never-accepted", true, nil),
		inst("not-deleted", false, nil),
		inst("started", true, func(i *skiffv1alpha1.Instance) { i.Status.StartTime = &now }),
		inst("has-status", true, func(i *skiffv1alpha1.Instance) {
			i.Status.ContainerStatuses = []skiffv1alpha1.ContainerStatus{{Name: "c"}}
		}),
		inst("has-init-status", true, func(i *skiffv1alpha1.Instance) {
			i.Status.InitContainerStatuses = []skiffv1alpha1.ContainerStatus{{Name: "i"}}
		}),
		inst("no-finalizer", true, func(i *skiffv1alpha1.Instance) { i.Finalizers = nil }),
	})
	var names []string
	for _, i := range got {
		names = append(names, i.Name)
	}
	if !slices.Equal(names, []string{"never-accepted"}) {
		t.Errorf("unclaimed: %v, want [never-accepted]", names)
	}
}
