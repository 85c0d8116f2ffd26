package workload

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// Condition reasons, Kubernetes Deployment's where they mean the same.
const (
	ReasonMinimumAvailable   = "MinimumReplicasAvailable"
	ReasonMinimumUnavailable = "MinimumReplicasUnavailable"
	ReasonNewRevisionReady   = "NewRevisionAvailable"
	ReasonUpdating           = "ReplicaUpdated"
	ReasonDeadlineExceeded   = "ProgressDeadlineExceeded"
	defaultProgressDeadline  = 600 * time.Second
)

// Observation is the status a reconciliation observed, with what changed
// since the previous one.
type Observation struct {
	Status skiffv1alpha1.WorkloadStatus
	// Complete: every Instance is of the update revision and ready.
	Complete bool
	// RolloutStarted: the update revision changed while old Instances run.
	RolloutStarted bool
	// RolloutCompleted: a rollout from another revision just finished.
	RolloutCompleted bool
	// Stalled: the progress deadline just passed.
	Stalled bool
	// Deadline is when the rollout stalls unless it progresses; zero when
	// nothing is in progress.
	Deadline time.Time
}

// Observe computes w's status from a comparison and the plan made from it.
func Observe(w *skiffv1alpha1.Workload, c *Comparison, actions []Action, selector string, now time.Time) Observation {
	old := &w.Status
	st := skiffv1alpha1.WorkloadStatus{
		ObservedGeneration:    w.Generation,
		Replicas:              c.Alive(),
		ReadyReplicas:         c.Ready(),
		AvailableReplicas:     c.Available(),
		UpdatedReplicas:       int32(len(c.Current)),
		Selector:              selector,
		UpdateRevision:        c.UpdateRevision,
		CurrentRevision:       currentRevision(c),
		Conditions:            append([]metav1.Condition(nil), old.Conditions...),
		LastAvailableRevision: old.LastAvailableRevision,
		LastAvailableTemplate: old.LastAvailableTemplate,
		ProgressTime:          old.ProgressTime,
		Plan:                  planSummary(w, c, actions),
	}
	o := Observation{}
	o.Complete = len(c.Outdated) == 0 && int32(len(c.Current)) == c.Replicas && c.countAvailable(c.Current) == c.Replicas
	o.RolloutStarted = old.UpdateRevision != "" && old.UpdateRevision != c.UpdateRevision && len(c.Outdated) > 0
	// LastAvailableRevision still names the revision rolled out from.
	o.RolloutCompleted = o.Complete && c.Replicas > 0 && old.LastAvailableRevision != "" && old.LastAvailableRevision != c.UpdateRevision

	available := metav1.Condition{Type: skiffv1alpha1.WorkloadAvailable, Status: metav1.ConditionTrue, Reason: ReasonMinimumAvailable,
		Message:            fmt.Sprintf("%d of %d instances available (at least %d needed)", st.AvailableReplicas, c.Replicas, c.MinAvailable()),
		ObservedGeneration: w.Generation}
	if st.AvailableReplicas < c.MinAvailable() {
		available.Status, available.Reason = metav1.ConditionFalse, ReasonMinimumUnavailable
	}
	setCondition(&st.Conditions, available, now)

	// At zero replicas every template is trivially complete: only one that
	// ran ready is worth rolling back to.
	if o.Complete && c.Replicas > 0 && available.Status == metav1.ConditionTrue {
		st.LastAvailableRevision = c.UpdateRevision
		st.LastAvailableTemplate = w.Spec.Template.DeepCopy()
	}
	progressing := metav1.Condition{Type: skiffv1alpha1.WorkloadProgressing, ObservedGeneration: w.Generation}
	deadline := progressDeadline(w)
	switch {
	case o.Complete:
		progressing.Status, progressing.Reason = metav1.ConditionTrue, ReasonNewRevisionReady
		progressing.Message = fmt.Sprintf("revision %s is available", c.UpdateRevision)
		st.ProgressTime = nil
	case progressed(old, &st) || st.ProgressTime == nil:
		t := metav1.NewTime(now)
		st.ProgressTime = &t
		progressing.Status, progressing.Reason = metav1.ConditionTrue, ReasonUpdating
		progressing.Message = progressMessage(c)
		o.Deadline = now.Add(deadline)
	case now.Sub(st.ProgressTime.Time) >= deadline:
		progressing.Status, progressing.Reason = metav1.ConditionFalse, ReasonDeadlineExceeded
		progressing.Message = fmt.Sprintf("revision %s made no progress for %s: %s", c.UpdateRevision, deadline, progressMessage(c))
		prev := meta.FindStatusCondition(old.Conditions, skiffv1alpha1.WorkloadProgressing)
		o.Stalled = prev == nil || prev.Reason != ReasonDeadlineExceeded
	default:
		progressing.Status, progressing.Reason = metav1.ConditionTrue, ReasonUpdating
		progressing.Message = progressMessage(c)
		o.Deadline = st.ProgressTime.Add(deadline)
	}
	setCondition(&st.Conditions, progressing, now)
	o.Status = st
	return o
}

// progressed reports whether a rollout moved forward since the last
// status, as Kubernetes counts it: a new generation or revision, more
// Instances updated, ready or available, or fewer old ones. Losses are not
// progress: a rollout whose Instances keep failing must still stall.
func progressed(old, st *skiffv1alpha1.WorkloadStatus) bool {
	return old.ObservedGeneration != st.ObservedGeneration || old.UpdateRevision != st.UpdateRevision ||
		st.UpdatedReplicas > old.UpdatedReplicas || st.ReadyReplicas > old.ReadyReplicas ||
		st.AvailableReplicas > old.AvailableReplicas ||
		st.Replicas-st.UpdatedReplicas < old.Replicas-old.UpdatedReplicas
}

func progressMessage(c *Comparison) string {
	return fmt.Sprintf("revision %s: %d of %d instances updated, %d of them ready, %d old",
		c.UpdateRevision, len(c.Current), c.Replicas, countReady(c.Current), len(c.Outdated))
}

func progressDeadline(w *skiffv1alpha1.Workload) time.Duration {
	if w.Spec.ProgressDeadlineSeconds == nil {
		return defaultProgressDeadline
	}
	return time.Duration(*w.Spec.ProgressDeadlineSeconds) * time.Second
}

// currentRevision is the revision most live Instances run (the update
// revision on a tie, or when none run).
func currentRevision(c *Comparison) string {
	counts := map[string]int{}
	for _, inst := range c.Outdated {
		counts[inst.Labels[skiffv1alpha1.RevisionLabel]]++
	}
	best, n := c.UpdateRevision, len(c.Current)
	for rev, k := range counts {
		if k > n || (k == n && rev < best && best != c.UpdateRevision) {
			best, n = rev, k
		}
	}
	return best
}

func planSummary(w *skiffv1alpha1.Workload, c *Comparison, actions []Action) *skiffv1alpha1.WorkloadPlan {
	p := &skiffv1alpha1.WorkloadPlan{
		ObservedGeneration: w.Generation,
		Unchanged:          min(int32(len(c.Current)), c.Replicas),
		Magnitude:          c.Magnitude(),
		Urgency:            c.Urgency,
	}
	for _, a := range actions {
		switch a.Type {
		case Create:
			p.Creates++
		case Delete:
			p.Deletes++
		case Replace:
			p.Replaces++
		}
	}
	return p
}

// setCondition sets cond, keeping the transition time when its status
// does not change.
func setCondition(conds *[]metav1.Condition, cond metav1.Condition, now time.Time) {
	cond.LastTransitionTime = metav1.NewTime(now)
	meta.SetStatusCondition(conds, cond)
}
