package nodelifecycle

import (
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// Reasons the controller writes into conditions.
const (
	// ReasonNodeStatusUnknown is the Ready condition's reason on a node
	// that has not been seen for the grace period (Kubernetes' word).
	ReasonNodeStatusUnknown = "NodeStatusUnknown"
)

// markUnknown sets Ready=Unknown and phase NotReady, and reports whether
// that changed anything. The message is not compared: it names an age
// that grows with every pass.
func markUnknown(s *skiffv1alpha1.NodeStatus, msg string) bool {
	c := meta.FindStatusCondition(s.Conditions, skiffv1alpha1.NodeConditionReady)
	if s.Phase == skiffv1alpha1.NodeNotReady && c != nil && c.Status == metav1.ConditionUnknown && c.Reason == ReasonNodeStatusUnknown {
		return false
	}
	s.Phase = skiffv1alpha1.NodeNotReady
	meta.SetStatusCondition(&s.Conditions, metav1.Condition{
		Type: skiffv1alpha1.NodeConditionReady, Status: metav1.ConditionUnknown,
		Reason: ReasonNodeStatusUnknown, Message: msg,
	})
	return true
}

// isTaint returns a match for the NoExecute taint key this controller
// manages (unreachable or dead).
func isTaint(key string) func(skiffv1alpha1.Taint) bool {
	return func(t skiffv1alpha1.Taint) bool {
		return t.Key == key && t.Effect == skiffv1alpha1.TaintEffectNoExecute
	}
}

// withTaint returns taints with the NoExecute taint key, added at now when
// missing, and the taint. A taint without timeAdded (put on by hand) gets
// now, since tolerationSeconds count from it. changed says whether the
// Node must be written. The time is in whole seconds, as the API stores
// it, so that this pass and the next count from the same moment.
func withTaint(taints []skiffv1alpha1.Taint, key string, now time.Time) (out []skiffv1alpha1.Taint, taint skiffv1alpha1.Taint, changed bool) {
	out = slices.Clone(taints)
	added := metav1.NewTime(now.Truncate(time.Second))
	i := slices.IndexFunc(out, isTaint(key))
	if i < 0 {
		taint = skiffv1alpha1.Taint{Key: key, Effect: skiffv1alpha1.TaintEffectNoExecute, TimeAdded: &added}
		return append(out, taint), taint, true
	}
	if out[i].TimeAdded == nil {
		out[i].TimeAdded = &added
		changed = true
	}
	return out, out[i], changed
}

// withoutTaint returns taints without the NoExecute taint key, and whether
// there was one.
func withoutTaint(taints []skiffv1alpha1.Taint, key string) ([]skiffv1alpha1.Taint, bool) {
	out := slices.DeleteFunc(slices.Clone(taints), isTaint(key))
	return out, len(out) != len(taints)
}

// evictionTime returns when an Instance with tols must leave a node with
// the NoExecute taint, which was added at added; ok is false when it may
// stay for ever. As in Kubernetes' taint manager: without a matching
// toleration it goes at once; otherwise after the smallest
// tolerationSeconds of the matching tolerations; and never if none of
// them sets seconds.
func evictionTime(tols []skiffv1alpha1.Toleration, taint skiffv1alpha1.Taint, added time.Time) (at time.Time, ok bool) {
	matched, bounded := false, false
	var least int64
	for _, tol := range tols {
		if !tol.ToleratesTaint(&taint) {
			continue
		}
		matched = true
		if s := tol.TolerationSeconds; s != nil && (!bounded || *s < least) {
			bounded, least = true, *s
		}
	}
	switch {
	case !matched:
		return added, true
	case !bounded:
		return time.Time{}, false
	}
	return added.Add(time.Duration(max(least, 0)) * time.Second), true
}

// evictions returns the Instances on the node (bound there, neither
// finished nor being deleted) whose toleration of taint has run out at
// now, and when the next of the others runs out (zero if none will).
func evictions(instances []skiffv1alpha1.Instance, taint skiffv1alpha1.Taint, now time.Time) (due []*skiffv1alpha1.Instance, next time.Time) {
	added := now
	if taint.TimeAdded != nil {
		added = taint.TimeAdded.Time
	}
	for i := range instances {
		inst := &instances[i]
		if inst.Finished() || !inst.DeletionTimestamp.IsZero() {
			continue
		}
		at, ok := evictionTime(inst.Spec.Tolerations, taint, added)
		switch {
		case !ok:
		case !at.After(now):
			due = append(due, inst)
		case next.IsZero() || at.Before(next):
			next = at
		}
	}
	return due, next
}

// unclaimed returns the Instances on a lost node that are being deleted
// and that its agent never accepted (no start time, no container status):
// the agent finalizer the bind set holds them, and no agent may come to
// release it. Their containers, should the agent have started some it
// could not report, are swept by the agent when it is back.
func unclaimed(instances []skiffv1alpha1.Instance) []*skiffv1alpha1.Instance {
	var out []*skiffv1alpha1.Instance
	for i := range instances {
		inst := &instances[i]
		if !inst.DeletionTimestamp.IsZero() && inst.Status.StartTime == nil &&
			len(inst.Status.ContainerStatuses) == 0 && len(inst.Status.InitContainerStatuses) == 0 &&
			slices.Contains(inst.Finalizers, skiffv1alpha1.AgentFinalizer) {
			out = append(out, inst)
		}
	}
	return out
}
