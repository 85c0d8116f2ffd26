package workload

import (
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// Comparison is COMPARE's verdict: the owned Instances sorted against the
// desired state, with the strategy's budgets resolved to numbers.
type Comparison struct {
	// Replicas is the number of Instances wanted.
	Replicas int32
	// Strategy is RollingUpdate or Recreate.
	Strategy skiffv1alpha1.WorkloadStrategyType
	// MaxSurge and MaxUnavailable are the rolling update's budgets in
	// Instances (MaxUnavailable is at least 1 when both would be 0).
	MaxSurge, MaxUnavailable int32
	// UpdateRevision is the revision of the current template.
	UpdateRevision string
	// MinReady is how long an Instance must have been Ready to count as
	// available; Now is the moment the comparison judges it at.
	MinReady time.Duration
	Now      time.Time

	// Current are live Instances of the update revision: unchanged, or
	// surplus when there are more than Replicas.
	Current []*skiffv1alpha1.Instance
	// Outdated are live Instances of another revision: modifications.
	Outdated []*skiffv1alpha1.Instance
	// Finished ended Failed or Succeeded (lost with their node, preempted,
	// crashed under restartPolicy Never): each is replaced.
	Finished []*skiffv1alpha1.Instance
	// Terminating are being deleted; they count for nothing but Recreate
	// waits for them.
	Terminating []*skiffv1alpha1.Instance

	// Additions, Modifications, Deletions and Replacements are the drift:
	// Instances missing, of an old revision, surplus, and finished.
	Additions, Modifications, Deletions, Replacements int32
	// Urgency ranks the drift.
	Urgency skiffv1alpha1.Urgency
}

// Magnitude is the number of changes between desired and observed.
func (c *Comparison) Magnitude() int32 {
	return c.Additions + c.Modifications + c.Deletions + c.Replacements
}

// Alive counts the live Instances of every revision.
func (c *Comparison) Alive() int32 { return int32(len(c.Current) + len(c.Outdated)) }

// Ready counts the live Instances that are Ready.
func (c *Comparison) Ready() int32 { return countReady(c.Current) + countReady(c.Outdated) }

// Available counts the live Instances that have been Ready for MinReady.
func (c *Comparison) Available() int32 {
	return c.countAvailable(c.Current) + c.countAvailable(c.Outdated)
}

// available reports whether inst has been Ready for at least MinReady.
func (c *Comparison) available(inst *skiffv1alpha1.Instance) bool {
	if !Ready(inst) {
		return false
	}
	return c.MinReady <= 0 || !readySince(inst).Add(c.MinReady).After(c.Now)
}

func (c *Comparison) countAvailable(insts []*skiffv1alpha1.Instance) int32 {
	var n int32
	for _, inst := range insts {
		if c.available(inst) {
			n++
		}
	}
	return n
}

// NextAvailable is how long until the next Ready Instance becomes
// available (0: none is waiting for MinReady).
func (c *Comparison) NextAvailable() time.Duration {
	var next time.Duration
	for _, insts := range [][]*skiffv1alpha1.Instance{c.Current, c.Outdated} {
		for _, inst := range insts {
			if !Ready(inst) || c.available(inst) {
				continue
			}
			if wait := readySince(inst).Add(c.MinReady).Sub(c.Now); next == 0 || wait < next {
				next = wait
			}
		}
	}
	return next
}

// readySince is when inst's Ready condition last became true.
func readySince(inst *skiffv1alpha1.Instance) time.Time {
	if cond := meta.FindStatusCondition(inst.Status.Conditions, skiffv1alpha1.InstanceReady); cond != nil {
		return cond.LastTransitionTime.Time
	}
	return time.Time{}
}

// MinAvailable is how many Instances must stay ready during a rollout.
func (c *Comparison) MinAvailable() int32 { return max(c.Replicas-c.MaxUnavailable, 0) }

// Compare sorts a snapshot's Instances against its Workload's desired state.
func Compare(s *Snapshot) *Comparison {
	w := s.Workload
	c := &Comparison{
		Replicas:       replicas(w),
		Strategy:       w.Spec.Strategy.Type,
		UpdateRevision: Revision(&w.Spec.Template),
		MinReady:       time.Duration(w.Spec.MinReadySeconds) * time.Second,
		Now:            s.Now,
	}
	if c.Now.IsZero() {
		c.Now = time.Now()
	}
	if c.Strategy == "" {
		c.Strategy = skiffv1alpha1.RollingUpdateStrategy
	}
	c.MaxSurge, c.MaxUnavailable = budgets(w, c.Replicas)
	for _, inst := range s.Instances {
		switch {
		case !inst.DeletionTimestamp.IsZero():
			c.Terminating = append(c.Terminating, inst)
		case inst.Finished():
			c.Finished = append(c.Finished, inst)
		case inst.Labels[skiffv1alpha1.RevisionLabel] == c.UpdateRevision:
			c.Current = append(c.Current, inst)
		default:
			c.Outdated = append(c.Outdated, inst)
		}
	}
	cur, old := int32(len(c.Current)), int32(len(c.Outdated))
	c.Replacements = int32(len(c.Finished))
	c.Modifications = old
	c.Deletions = max(cur-c.Replicas, 0)
	c.Additions = max(c.Replicas-cur-old-c.Replacements, 0)
	c.Urgency = c.urgency()
	return c
}

func (c *Comparison) urgency() skiffv1alpha1.Urgency {
	ready := c.Available()
	switch {
	case c.Replicas > 0 && ready == 0:
		return skiffv1alpha1.UrgencyCritical
	case ready < c.MinAvailable():
		return skiffv1alpha1.UrgencyHigh
	case c.Magnitude() > 0:
		return skiffv1alpha1.UrgencyMedium
	case ready != c.Replicas:
		// Everything exists as wanted; some of it is still starting.
		return skiffv1alpha1.UrgencyLow
	}
	return skiffv1alpha1.UrgencyNone
}

func replicas(w *skiffv1alpha1.Workload) int32 {
	if w.Spec.Replicas == nil {
		return 1
	}
	return *w.Spec.Replicas
}

// budgets resolves maxSurge (rounded up) and maxUnavailable (rounded down)
// against replicas, as Kubernetes Deployments do; both zero would block a
// rollout, so maxUnavailable becomes 1 then. Recreate has no budgets: it
// is Available only with every replica ready, as in Kubernetes.
func budgets(w *skiffv1alpha1.Workload, replicas int32) (surge, unavailable int32) {
	ru := w.Spec.Strategy.RollingUpdate
	if w.Spec.Strategy.Type == skiffv1alpha1.RecreateStrategy {
		return 0, 0
	}
	surgeBound, unavailBound := intstr.FromString("25%"), intstr.FromString("25%")
	if ru != nil && ru.MaxSurge != nil {
		surgeBound = *ru.MaxSurge
	}
	if ru != nil && ru.MaxUnavailable != nil {
		unavailBound = *ru.MaxUnavailable
	}
	// Validation admitted both; a bad value here can only mean zero.
	s, _ := intstr.GetScaledValueFromIntOrPercent(&surgeBound, int(replicas), true)
	u, _ := intstr.GetScaledValueFromIntOrPercent(&unavailBound, int(replicas), false)
	if s == 0 && u == 0 {
		u = 1
	}
	return int32(s), int32(u)
}

// Ready reports whether inst is running and passes its readiness.
func Ready(inst *skiffv1alpha1.Instance) bool {
	return inst.Status.Phase == skiffv1alpha1.InstanceRunning &&
		meta.IsStatusConditionPresentAndEqual(inst.Status.Conditions, skiffv1alpha1.InstanceReady, metav1.ConditionTrue)
}

func countReady(insts []*skiffv1alpha1.Instance) int32 {
	var n int32
	for _, inst := range insts {
		if Ready(inst) {
			n++
		}
	}
	return n
}
