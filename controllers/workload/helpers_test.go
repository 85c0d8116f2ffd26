package workload

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

var epoch = time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)

// workloadOf makes a Workload of n replicas with the given image.
func workloadOf(n int32, image string) *skiffv1alpha1.Workload {
	w := &skiffv1alpha1.Workload{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "w-uid", Generation: 1},
		Spec: skiffv1alpha1.WorkloadSpec{
			Replicas: ptr.To(n),
			Template: skiffv1alpha1.InstanceTemplate{
				Metadata: skiffv1alpha1.TemplateMetadata{Labels: map[string]string{"app": "web"}},
				Spec:     skiffv1alpha1.InstanceTemplateSpec{Containers: []skiffv1alpha1.Container{{Name: "c", Image: image}}},
			},
		},
	}
	return w
}

func rolling(w *skiffv1alpha1.Workload, surge, unavailable intstr.IntOrString) *skiffv1alpha1.Workload {
	w.Spec.Strategy = skiffv1alpha1.WorkloadStrategy{Type: skiffv1alpha1.RollingUpdateStrategy,
		RollingUpdate: &skiffv1alpha1.RollingUpdate{MaxSurge: &surge, MaxUnavailable: &unavailable}}
	return w
}

// instState describes one Instance for a test.
type instState struct {
	rev          string
	ready, bound bool
	phase        skiffv1alpha1.InstancePhase
	terminating  bool
	age          int // minutes before epoch
}

var seq int

func instanceOf(s instState) *skiffv1alpha1.Instance {
	seq++
	inst := &skiffv1alpha1.Instance{
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("web-%s-%05d", s.rev, seq), Namespace: "default", UID: types.UID(fmt.Sprintf("uid-%d", seq)),
			Labels:            map[string]string{"app": "web", skiffv1alpha1.RevisionLabel: s.rev},
			CreationTimestamp: metav1.NewTime(epoch.Add(-time.Duration(s.age) * time.Minute)),
		},
	}
	if s.bound || s.ready {
		inst.Spec.NodeName = "n1"
	}
	inst.Status.Phase = s.phase
	if s.phase == "" {
		inst.Status.Phase = skiffv1alpha1.InstancePending
		if s.bound || s.ready {
			inst.Status.Phase = skiffv1alpha1.InstanceRunning
		}
	}
	if s.ready {
		inst.Status.Conditions = []metav1.Condition{{Type: skiffv1alpha1.InstanceReady, Status: metav1.ConditionTrue}}
	}
	if s.terminating {
		now := metav1.NewTime(epoch)
		inst.DeletionTimestamp = &now
	}
	return inst
}

// instances makes n Instances alike.
func instances(n int, s instState) []*skiffv1alpha1.Instance {
	var out []*skiffv1alpha1.Instance
	for range n {
		out = append(out, instanceOf(s))
	}
	return out
}

func join(groups ...[]*skiffv1alpha1.Instance) []*skiffv1alpha1.Instance {
	var out []*skiffv1alpha1.Instance
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

// count tallies a plan's actions by type.
func count(actions []Action) map[ActionType]int {
	out := map[ActionType]int{}
	for _, a := range actions {
		out[a.Type]++
	}
	return out
}
