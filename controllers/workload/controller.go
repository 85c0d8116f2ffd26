package workload

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/controllers/events"
	"skiff.dev/skiff/controllers/metrics"
	"skiff.dev/skiff/internal/writes"
)

// Component names the workload controller in Events.
const Component = "skiff-workload-controller"

// conflictRetry is how soon a reconciliation whose status write met a
// newer Workload runs again.
const conflictRetry = 100 * time.Millisecond

// name is the controller's name in metrics and logs.
const name = "workload"

// Controller reconciles Workloads: SENSE, COMPARE, PLAN, ACTUATE.
type Controller struct {
	// Client reads from the manager's cache and writes to the apiserver.
	Client client.Client
	// Concurrency bounds one reconciliation's writes in flight.
	Concurrency int
	// Workers is how many Workloads reconcile at once (default 4).
	Workers int
	// Metrics records cycles and drift; may be nil.
	Metrics *metrics.Metrics
	// Clock is the time source; the real clock if nil.
	Clock clock.PassiveClock

	expect *expectations
	// owned reads a Workload's Instances from the informer's index.
	owned func(types.UID) ([]*skiffv1alpha1.Instance, error)
	// written is what the controller's own status writes replaced.
	written writes.Superseded
	// lastStatus is when each Workload's status was last written.
	lastStatus sync.Map // types.NamespacedName -> time.Time
}

// statusInterval is how often a Workload's status is written at most
// while only its counts and messages change: a rollout of a hundred
// Instances writes it a few times a second, not once per Instance. A
// condition that changes, a new generation or revision is written at once.
const statusInterval = time.Second

// errStatusDeferred says a status write waits for statusInterval.
type errStatusDeferred struct{ wait time.Duration }

func (e errStatusDeferred) Error() string {
	return fmt.Sprintf("status write deferred %v", e.wait)
}

// SetupWithManager registers the controller and the owner index it reads
// Instances by.
func (c *Controller) SetupWithManager(mgr manager.Manager) error {
	c.expect = newExpectations()
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
	informer, err := mgr.GetCache().GetInformer(context.Background(), &skiffv1alpha1.Instance{})
	if err != nil {
		return fmt.Errorf("instance informer: %w", err)
	}
	if err := informer.AddIndexers(toolscache.Indexers{ownerIndex: ownerIndexFunc}); err != nil {
		return fmt.Errorf("indexing instances by owner: %w", err)
	}
	indexed, ok := informer.(interface{ GetIndexer() toolscache.Indexer })
	if !ok {
		return fmt.Errorf("instance informer %T has no indexer", informer)
	}
	c.owned = ownedFrom(indexed.GetIndexer())
	workers := c.Workers
	if workers <= 0 {
		workers = 4
	}
	return builder.ControllerManagedBy(mgr).Named(name).
		// Status writes are the controller's own: only spec changes (and
		// creates and deletes) need a look.
		For(&skiffv1alpha1.Workload{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Owns(&skiffv1alpha1.Instance{}, builder.WithPredicates(instanceChanged)).
		WithOptions(controller.Options{MaxConcurrentReconciles: workers}).
		Complete(c)
}

// instanceChanged passes the Instance updates that can change a plan or a
// status: phase, readiness, deletion, revision. The agents' other status
// writes (restart counts, container states) do not, nor does the bind:
// where an Instance runs only orders deletions, which the next
// reconciliation reads from the cache anyway.
var instanceChanged = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	a, okA := e.ObjectOld.(*skiffv1alpha1.Instance)
	b, okB := e.ObjectNew.(*skiffv1alpha1.Instance)
	if !okA || !okB {
		return true
	}
	return a.Status.Phase != b.Status.Phase || Ready(a) != Ready(b) ||
		a.DeletionTimestamp.IsZero() != b.DeletionTimestamp.IsZero() ||
		a.Labels[skiffv1alpha1.RevisionLabel] != b.Labels[skiffv1alpha1.RevisionLabel]
}}

// Reconcile moves one Workload a step toward its desired state.
func (c *Controller) Reconcile(ctx context.Context, req reconcile.Request) (res reconcile.Result, err error) {
	start := time.Now()
	defer func() { c.Metrics.Reconciled(name, time.Since(start).Seconds(), err) }()

	var w skiffv1alpha1.Workload
	if err := c.Client.Get(ctx, req.NamespacedName, &w); err != nil {
		if apierrors.IsNotFound(err) {
			c.expect.forget(req.NamespacedName)
			c.written.Forget(req.NamespacedName)
			c.lastStatus.Delete(req.NamespacedName)
			c.Metrics.ForgetWorkload(req.Namespace, req.Name)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	if !w.DeletionTimestamp.IsZero() {
		// The garbage collector removes the Instances as the deletion asks.
		c.expect.forget(req.NamespacedName)
		return reconcile.Result{}, nil
	}
	snap, err := Sensor{Reader: c.Client, Owned: c.owned}.Sense(ctx, &w)
	if err != nil {
		return reconcile.Result{}, err
	}
	now := c.Clock.Now()
	if ok, wait := c.expect.satisfied(req.NamespacedName, w.UID, snap.Instances, now); !ok {
		// Our own writes are on their way to the cache; their events bring
		// us back. wait bounds it should one be lost.
		return reconcile.Result{RequeueAfter: wait}, nil
	}
	snap.Now = now
	cmp := Compare(snap)
	actions := Plan(cmp)
	c.Metrics.Drift(w.Namespace, w.Name, int(cmp.Magnitude()))

	act := Actuator{Client: c.Client, Concurrency: c.Concurrency}
	out := act.Actuate(ctx, &w, actions)
	c.expect.expect(req.NamespacedName, w.UID, out.Created, out.Deleted, now)

	obs := Observe(&w, cmp, actions, selectorString(&w), now)
	prev := w.Status
	statusErr := c.writeStatus(ctx, &w, obs.Status)
	if statusErr != nil {
		// The transitions are told once, by the reconciliation whose
		// status records them; the actions were done either way.
		obs.RolloutStarted, obs.RolloutCompleted, obs.Stalled = false, false, false
	}
	if err := c.record(ctx, &w, prev, cmp, actions, out, obs); err != nil {
		log.FromContext(ctx).Error(err, "recording events")
	}
	var deferred errStatusDeferred
	if errors.As(statusErr, &deferred) {
		return reconcile.Result{RequeueAfter: deferred.wait}, out.Err
	}
	if apierrors.IsConflict(statusErr) {
		// The cache is behind our own last status write, whose event the
		// generation filter drops: look again shortly, without an error.
		return reconcile.Result{RequeueAfter: conflictRetry}, out.Err
	}
	if statusErr != nil {
		return reconcile.Result{}, statusErr
	}
	if w.Spec.AutoRollback && stalled(obs.Status) {
		if err := c.rollback(ctx, &w, obs); err != nil {
			return reconcile.Result{}, err
		}
	}
	if out.Err != nil {
		return reconcile.Result{}, out.Err
	}
	var next time.Duration
	if !obs.Deadline.IsZero() {
		next = obs.Deadline.Sub(now) + time.Second
	}
	// Nothing in the API changes when an Instance has been Ready for
	// minReadySeconds: come back then.
	if wait := cmp.NextAvailable(); wait > 0 && (next == 0 || wait < next) {
		next = wait
	}
	return reconcile.Result{RequeueAfter: next}, nil
}

func (c *Controller) writeStatus(ctx context.Context, w *skiffv1alpha1.Workload, st skiffv1alpha1.WorkloadStatus) error {
	if apiequality.Semantic.DeepEqual(w.Status, st) {
		return nil
	}
	key := client.ObjectKeyFromObject(w)
	if last, ok := c.lastStatus.Load(key); ok && !transition(w.Status, st) {
		if wait := statusInterval - time.Since(last.(time.Time)); wait > 0 {
			return errStatusDeferred{wait}
		}
	}
	if c.written.Stale(w) {
		// The cache is behind this controller's own last write: sending
		// this one could only conflict.
		return apierrors.NewConflict(skiffv1alpha1.Resource("workloads"), w.Name, errors.New("the cache is behind the controller's own status write"))
	}
	w.Status = st
	if err := c.written.Write(w, func() error { return c.Client.Status().Update(ctx, w) }); err != nil {
		return fmt.Errorf("workload %q in %q: writing status: %w", w.Name, w.Namespace, err)
	}
	c.lastStatus.Store(key, time.Now())
	return nil
}

// ownedFrom reads the Instances of ownerIndex in indexer: the cache's
// objects themselves.
func ownedFrom(indexer toolscache.Indexer) func(types.UID) ([]*skiffv1alpha1.Instance, error) {
	return func(uid types.UID) ([]*skiffv1alpha1.Instance, error) {
		objs, err := indexer.ByIndex(ownerIndex, string(uid))
		if err != nil {
			return nil, err
		}
		out := make([]*skiffv1alpha1.Instance, 0, len(objs))
		for _, o := range objs {
			if inst, ok := o.(*skiffv1alpha1.Instance); ok {
				out = append(out, inst)
			}
		}
		return out, nil
	}
}

// transition reports whether a status change is one to write at once: a
// condition's status or reason, the generation observed, the revisions.
func transition(old, st skiffv1alpha1.WorkloadStatus) bool {
	if old.ObservedGeneration != st.ObservedGeneration || old.UpdateRevision != st.UpdateRevision ||
		old.CurrentRevision != st.CurrentRevision || old.LastAvailableRevision != st.LastAvailableRevision ||
		len(old.Conditions) != len(st.Conditions) {
		return true
	}
	for _, c := range st.Conditions {
		prev := meta.FindStatusCondition(old.Conditions, c.Type)
		if prev == nil || prev.Status != c.Status || prev.Reason != c.Reason {
			return true
		}
	}
	return false
}

// stalled reports whether the rollout is past its progress deadline.
func stalled(st skiffv1alpha1.WorkloadStatus) bool {
	cond := meta.FindStatusCondition(st.Conditions, skiffv1alpha1.WorkloadProgressing)
	return cond != nil && cond.Status == metav1.ConditionFalse && cond.Reason == ReasonDeadlineExceeded
}

// rollback returns the template to the last revision that became
// Available, when the rollout of another one stalled. It is decided from
// the status on every reconciliation, not from the moment of the stall, so
// a rollback whose write failed is tried again.
func (c *Controller) rollback(ctx context.Context, w *skiffv1alpha1.Workload, obs Observation) error {
	st := obs.Status
	if st.LastAvailableTemplate == nil || Revision(st.LastAvailableTemplate) == st.UpdateRevision {
		if !obs.Stalled {
			return nil
		}
		return c.event(ctx, w, corev1.EventTypeWarning, "RollbackSkipped",
			fmt.Sprintf("revision %s stalled and there is no other revision that was available to roll back to", st.UpdateRevision))
	}
	bad, target := st.UpdateRevision, Revision(st.LastAvailableTemplate)
	w.Spec.Template = *st.LastAvailableTemplate.DeepCopy()
	if err := c.Client.Update(ctx, w); err != nil {
		return fmt.Errorf("workload %q in %q: rolling back to revision %s: %w", w.Name, w.Namespace, target, err)
	}
	return c.event(ctx, w, corev1.EventTypeWarning, "RolledBack",
		fmt.Sprintf("rolled back from revision %s to revision %s: %s", bad, target, progressingMessage(st)))
}

func progressingMessage(st skiffv1alpha1.WorkloadStatus) string {
	for _, cond := range st.Conditions {
		if cond.Type == skiffv1alpha1.WorkloadProgressing {
			return cond.Message
		}
	}
	return ""
}

// record writes the Events of one reconciliation.
func (c *Controller) record(ctx context.Context, w *skiffv1alpha1.Workload, prev skiffv1alpha1.WorkloadStatus, cmp *Comparison, actions []Action, out Outcome, obs Observation) error {
	var msgs []struct{ typ, reason, msg string }
	add := func(typ, reason, msg string) {
		msgs = append(msgs, struct{ typ, reason, msg string }{typ, reason, msg})
	}
	if obs.RolloutStarted {
		add(corev1.EventTypeNormal, "RolloutStarted", fmt.Sprintf("rolling out revision %s (was %s) by %s", cmp.UpdateRevision, prev.UpdateRevision, cmp.Strategy))
	}
	if n := len(out.Created) - out.Replaced; n > 0 {
		add(corev1.EventTypeNormal, "ScalingUp", fmt.Sprintf("created %d instance(s) of revision %s (%s): %s",
			n, cmp.UpdateRevision, reasonOf(actions, Create), abbreviate(out.Created)))
	}
	if out.Replaced > 0 {
		add(corev1.EventTypeNormal, "InstanceReplaced", fmt.Sprintf("replaced %d finished instance(s): %s", out.Replaced, abbreviate(doneNames(actions, Replace, out.Deleted))))
	}
	if names := doneNames(actions, Delete, out.Deleted); len(names) > 0 {
		add(corev1.EventTypeNormal, "ScalingDown", fmt.Sprintf("deleted %d instance(s) (%s): %s", len(names), reasonOf(actions, Delete), abbreviate(names)))
	}
	if obs.RolloutCompleted {
		add(corev1.EventTypeNormal, "RolloutComplete", fmt.Sprintf("revision %s is available on all %d instance(s)", cmp.UpdateRevision, cmp.Replicas))
	}
	if obs.Stalled {
		add(corev1.EventTypeWarning, ReasonDeadlineExceeded, progressingMessage(obs.Status))
	}
	if out.Err != nil {
		add(corev1.EventTypeWarning, "FailedActuation", out.Err.Error())
	}
	for _, m := range msgs {
		if err := c.event(ctx, w, m.typ, m.reason, m.msg); err != nil {
			return err
		}
	}
	return nil
}

func (c *Controller) event(ctx context.Context, w *skiffv1alpha1.Workload, typ, reason, msg string) error {
	return events.Recorder{Client: c.Client, Component: Component}.Event(ctx, w, typ, reason, msg)
}

func reasonOf(actions []Action, t ActionType) string {
	for _, a := range actions {
		if a.Type == t {
			return a.Reason
		}
	}
	return ""
}

// doneNames names the Instances that actions of type t removed.
func doneNames(actions []Action, t ActionType, deleted []types.UID) []string {
	done := map[types.UID]bool{}
	for _, uid := range deleted {
		done[uid] = true
	}
	var names []string
	for _, a := range actions {
		if a.Type == t && done[a.Precondition] {
			names = append(names, a.Instance.Name)
		}
	}
	return names
}

// abbreviate lists a few names and counts the rest: an Event stays short
// when a hundred Instances change at once.
func abbreviate(names []string) string {
	const shown = 5
	if len(names) <= shown {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:shown], ", "), len(names)-shown)
}

func selectorString(w *skiffv1alpha1.Workload) string {
	if w.Spec.Selector == nil {
		return ""
	}
	sel, err := metav1.LabelSelectorAsSelector(w.Spec.Selector)
	if err != nil {
		return ""
	}
	return sel.String()
}
