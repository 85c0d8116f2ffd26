package workload

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// TestInstanceChanged: which Instance updates bring the Workload round.
// Each one that passes costs a reconciliation of every Instance the
// Workload owns, so only what can change a plan or a status passes.
func TestInstanceChanged(t *testing.T) {
	base := func() *skiffv1alpha1.Instance {
		inst := &skiffv1alpha1.Instance{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "default",
			Labels: map[string]string{skiffv1alpha1.RevisionLabel: "r1"}}}
		inst.Status.Phase = skiffv1alpha1.InstancePending
		return inst
	}
	for _, c := range []struct {
		name   string
		change func(*skiffv1alpha1.Instance)
		want   bool
	}{
		{"phase", func(i *skiffv1alpha1.Instance) { i.Status.Phase = skiffv1alpha1.InstanceFailed }, true},
		{"ready", func(i *skiffv1alpha1.Instance) {
			i.Status.Phase = skiffv1alpha1.InstanceRunning
			i.Status.Conditions = []metav1.Condition{{Type: skiffv1alpha1.InstanceReady, Status: metav1.ConditionTrue}}
		}, true},
		{"deletion", func(i *skiffv1alpha1.Instance) { now := metav1.Now(); i.DeletionTimestamp = &now }, true},
		{"revision", func(i *skiffv1alpha1.Instance) { i.Labels[skiffv1alpha1.RevisionLabel] = "r2" }, true},
		{"bind", func(i *skiffv1alpha1.Instance) { i.Spec.NodeName = "n1" }, false},
		{"restart count", func(i *skiffv1alpha1.Instance) {
			i.Status.ContainerStatuses = []skiffv1alpha1.ContainerStatus{{Name: "c", RestartCount: 3}}
		}, false},
		{"finalizer", func(i *skiffv1alpha1.Instance) { i.Finalizers = []string{skiffv1alpha1.AgentFinalizer} }, false},
	} {
		old, cur := base(), base()
		c.change(cur)
		if got := instanceChanged.Update(event.UpdateEvent{ObjectOld: old, ObjectNew: cur}); got != c.want {
			t.Errorf("%s: passes %v, want %v", c.name, got, c.want)
		}
	}
}
