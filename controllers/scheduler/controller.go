package scheduler

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/controllers/events"
	"skiff.dev/skiff/controllers/metrics"
	"skiff.dev/skiff/internal/writes"
)

// Component names the scheduler in Events.
const Component = "skiff-scheduler"

// Controller binds pending Instances (no spec.nodeName) to nodes through
// the binding subresource. Instances that fit nowhere get Scheduled=False
// with the no-fit message, the failing filter of each node and a
// FailedScheduling Event; if evicting lower-priority Instances on some node
// would make room, it preempts them and binds there once they are gone.
// Pending Instances are tried again when Nodes or other Instances change,
// and every retryInterval.
type Controller struct {
	Client    client.Client
	Scheduler *Scheduler
	Cache     *Cache
	// Workers bind at once (default 8); decisions are still taken one
	// at a time.
	Workers int
	// Metrics records every scheduling attempt; nil records nothing.
	Metrics *metrics.Metrics

	decisions sync.Mutex
	// fed reports whether the Cache has been told every Node and
	// Instance; nil without a manager.
	fed func() bool
	// bound are the versions of Instances this controller's binds
	// replaced: a reconcile that still reads one binds nothing again.
	bound writes.Superseded
	// nodeStore and instanceStore are the informers' stores, read without
	// copies; nil when the cache does not expose them.
	nodeStore, instanceStore toolscache.Store
}

// retryInterval bounds how long an unschedulable Instance waits for a
// change that was missed.
const retryInterval = time.Minute

// SetupWithManager registers the controller.
func (c *Controller) SetupWithManager(mgr manager.Manager) error {
	pending := predicate.NewPredicateFuncs(func(o client.Object) bool {
		inst, ok := o.(*skiffv1alpha1.Instance)
		return ok && inst.Spec.NodeName == "" && inst.DeletionTimestamp.IsZero()
	})
	// Anything that can free or add room sends every pending Instance
	// round again.
	if err := c.openStores(mgr); err != nil {
		return err
	}
	retryAll := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
		pending, err := c.pending(ctx)
		if err != nil {
			return nil
		}
		reqs := make([]reconcile.Request, len(pending))
		for i, inst := range pending {
			reqs[i] = reconcile.Request{NamespacedName: client.ObjectKeyFromObject(inst)}
		}
		return reqs
	})
	// Node updates that cannot change a verdict (most status writes, the
	// node IPAM's subnet) do not send every pending Instance round.
	nodeChanged := predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		old, ok1 := e.ObjectOld.(*skiffv1alpha1.Node)
		n, ok2 := e.ObjectNew.(*skiffv1alpha1.Node)
		return !ok1 || !ok2 || ready(old) != ready(n) || !equality.Semantic.DeepEqual(schedulingSpec(old), schedulingSpec(n)) ||
			!equality.Semantic.DeepEqual(old.Labels, n.Labels) || !equality.Semantic.DeepEqual(old.Status.Allocatable, n.Status.Allocatable)
	}}
	freed := predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return true },
		GenericFunc: func(event.GenericEvent) bool { return false },
		UpdateFunc: func(e event.UpdateEvent) bool {
			old, ok1 := e.ObjectOld.(*skiffv1alpha1.Instance)
			inst, ok2 := e.ObjectNew.(*skiffv1alpha1.Instance)
			// A nomination that moved or ended frees the room it reserved.
			return ok1 && ok2 && (finished(inst) || old.Status.NominatedNodeName != "" && old.Status.NominatedNodeName != inst.Status.NominatedNodeName)
		},
	}
	workers := c.Workers
	if workers <= 0 {
		workers = 8
	}
	return builder.ControllerManagedBy(mgr).Named("scheduler").
		For(&skiffv1alpha1.Instance{}, builder.WithPredicates(pending)).
		Watches(&skiffv1alpha1.Node{}, retryAll, builder.WithPredicates(nodeChanged)).
		Watches(&skiffv1alpha1.Instance{}, retryAll, builder.WithPredicates(freed)).
		WithOptions(controller.Options{MaxConcurrentReconciles: workers}).
		Complete(c)
}

// schedulingSpec is the part of a Node's spec the filters and scores read.
func schedulingSpec(n *skiffv1alpha1.Node) skiffv1alpha1.NodeSpec {
	spec := n.Spec
	spec.InstanceCIDR = ""
	return spec
}

// Reconcile schedules one pending Instance and records the attempt, from
// here to its bind or verdict.
func (c *Controller) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	start := time.Now()
	var inst skiffv1alpha1.Instance
	if err := c.Client.Get(ctx, req.NamespacedName, &inst); err != nil {
		if apierrors.IsNotFound(err) {
			c.bound.Forget(req.NamespacedName)
		}
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if !inst.DeletionTimestamp.IsZero() || c.bound.Stale(&inst) {
		// Being deleted, or bound by this controller already (the cache
		// has not shown it yet).
		return reconcile.Result{}, nil
	}
	if inst.Spec.NodeName != "" {
		return reconcile.Result{}, c.clearPlacementStatus(ctx, &inst)
	}
	result, node, err := c.schedule(ctx, &inst)
	c.Metrics.ScheduleAttempt(result, time.Since(start).Seconds())
	switch {
	case apierrors.IsConflict(err):
		// Bound, or changed, meanwhile: look again at the new state.
		return reconcile.Result{Requeue: true}, nil
	case err != nil:
		return reconcile.Result{}, err
	case node == "":
		return reconcile.Result{RequeueAfter: retryInterval}, nil
	}
	// Bookkeeping; on error, retried by the bound branch above (the event
	// is best effort).
	if err := c.clearPlacementStatus(ctx, &inst); err != nil {
		return reconcile.Result{}, err
	}
	if !meta.IsStatusConditionFalse(inst.Status.Conditions, skiffv1alpha1.InstanceScheduled) {
		// Placed at the first try: the Scheduled condition the bind set
		// says where, and an Event would be one more write per Instance.
		return reconcile.Result{}, nil
	}
	return reconcile.Result{}, c.event(ctx, &inst, corev1.EventTypeNormal, "Scheduled",
		fmt.Sprintf("Successfully assigned %s/%s to %s after waiting", inst.Namespace, inst.Name, node))
}

// schedule binds inst and names its node, or records why it fits nowhere
// (preempting for it when that helps); and it says which of the metrics'
// results the attempt had: a bind, a verdict, or an error (a bind that
// lost a race included).
func (c *Controller) schedule(ctx context.Context, inst *skiffv1alpha1.Instance) (result, node string, err error) {
	if node, ok := c.Cache.AssumedNode(inst.UID); ok {
		// Placed by an earlier decision's batch: only the bind is left.
		if err := c.bind(ctx, inst, node); err != nil {
			return metrics.ResultError, "", err
		}
		return metrics.ResultScheduled, node, nil
	}
	node, res, infos, err := c.decide(ctx, inst)
	if err != nil {
		return metrics.ResultError, "", err
	}
	if node == "" {
		// Preemption decides under the decisions' lock, one verdict at a
		// time, from the snapshot as it is now (the event-fed one may have
		// moved on since the decision).
		c.decisions.Lock()
		defer c.decisions.Unlock()
		if err := c.noFit(ctx, inst, res, infos); err != nil {
			return metrics.ResultError, "", err
		}
		return metrics.ResultUnschedulable, "", nil
	}
	// The placement is assumed: binds run in parallel, decisions do not.
	if err := c.bind(ctx, inst, node); err != nil {
		return metrics.ResultError, "", err
	}
	return metrics.ResultScheduled, node, nil
}

// decide picks inst's node, one decision at a time (as kube-scheduler's
// scheduling cycle), and assumes the placement before it returns, so the
// next decision sees it while the bind is still in flight.
func (c *Controller) decide(ctx context.Context, inst *skiffv1alpha1.Instance) (string, Result, []*NodeInfo, error) {
	c.decisions.Lock()
	defer c.decisions.Unlock()
	if node, ok := c.Cache.AssumedNode(inst.UID); ok {
		// Placed by the batch of a decision taken while this one waited.
		return node, Result{Node: node}, nil, nil
	}
	infos, pending, err := c.view(ctx)
	if err != nil {
		return "", Result{}, nil, err
	}
	infos = Reserve(inst, infos, pending)
	res := c.Scheduler.Schedule(inst, infos)
	if res.Node != "" {
		c.Cache.Assume(inst, res.Node)
		c.placeBatch(inst, res.Node, infos, pending)
	}
	return res.Node, res, infos, nil
}

// view is what a decision reads: the nodes with what they hold, and the
// pending Instances. From the event-fed Cache once its handlers have
// every object, else listed.
func (c *Controller) view(ctx context.Context) (infos []*NodeInfo, pending []*skiffv1alpha1.Instance, err error) {
	if c.fed != nil && c.fed() {
		return c.Cache.Current(), c.Cache.Pending(), nil
	}
	nodes, err := c.listNodes(ctx)
	if err != nil {
		return nil, nil, err
	}
	instances, err := c.listInstances(ctx)
	if err != nil {
		return nil, nil, err
	}
	return c.Cache.Snapshot(nodes, instances), pendingOf(instances), nil
}

// pending are the Instances waiting for a node; unlike view it does not
// touch the snapshot, so any goroutine may ask.
func (c *Controller) pending(ctx context.Context) ([]*skiffv1alpha1.Instance, error) {
	if c.fed != nil && c.fed() {
		return c.Cache.Pending(), nil
	}
	instances, err := c.listInstances(ctx)
	if err != nil {
		return nil, err
	}
	return pendingOf(instances), nil
}

func pendingOf(instances []*skiffv1alpha1.Instance) []*skiffv1alpha1.Instance {
	var out []*skiffv1alpha1.Instance
	for _, inst := range instances {
		if inst.Spec.NodeName == "" && inst.DeletionTimestamp.IsZero() {
			out = append(out, inst)
		}
	}
	return out
}

// batchSize is how many more pending Instances one decision places on the
// snapshot it built (which costs as much as all of them together).
const batchSize = 64

// placeBatch places up to batchSize other pending Instances of inst's
// priority on the same snapshot, one after the other, each seeing the
// ones before: the same verdicts as one decision each, for one snapshot.
// Their own reconciliations find the assumption and only bind. With any
// nomination pending, room is reserved per priority: no batch then.
func (c *Controller) placeBatch(inst *skiffv1alpha1.Instance, node string, infos []*NodeInfo, pending []*skiffv1alpha1.Instance) {
	var batch []*skiffv1alpha1.Instance
	for _, other := range pending {
		if other.Spec.NodeName != "" || !other.DeletionTimestamp.IsZero() {
			continue // a test's list of every Instance
		}
		if other.Status.NominatedNodeName != "" {
			return
		}
		if len(batch) < batchSize && other.UID != inst.UID && Priority(other) == Priority(inst) {
			if _, assumed := c.Cache.AssumedNode(other.UID); !assumed {
				batch = append(batch, other)
			}
		}
	}
	place := func(i *skiffv1alpha1.Instance, node string) {
		placed := i.DeepCopy()
		placed.Spec.NodeName = node
		findNode(infos, node).Add(placed)
	}
	place(inst, node)
	for _, other := range batch {
		if res := c.Scheduler.Schedule(other, infos); res.Node != "" {
			c.Cache.Assume(other, res.Node)
			place(other, res.Node)
		}
	}
}

// findNode finds a node in a snapshot, which is in name order.
func findNode(infos []*NodeInfo, name string) *NodeInfo {
	i, found := slices.BinarySearchFunc(infos, name, func(n *NodeInfo, name string) int { return strings.Compare(n.Node.Name, name) })
	if found {
		return infos[i]
	}
	for _, n := range infos {
		if n.Node.Name == name {
			return n
		}
	}
	return nil
}

// bind posts the binding of an assumed placement; a failed bind (a
// Conflict when the Instance was bound or deleted meanwhile) forgets it.
func (c *Controller) bind(ctx context.Context, inst *skiffv1alpha1.Instance, node string) error {
	err := c.bound.Write(inst, func() error {
		return c.Client.SubResource("binding").Create(ctx, inst, &skiffv1alpha1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: inst.Name, Namespace: inst.Namespace, UID: inst.UID},
			NodeName:   node,
		})
	})
	if err != nil {
		c.Cache.Forget(inst.UID)
		return fmt.Errorf("bind instance %s/%s to node %q: %w", inst.Namespace, inst.Name, node, err)
	}
	return nil
}

// clearPlacementStatus drops what only a pending Instance needs, the
// per-node failures and the nominated node, once it is bound.
func (c *Controller) clearPlacementStatus(ctx context.Context, inst *skiffv1alpha1.Instance) error {
	if len(inst.Status.SchedulingFailures) == 0 && inst.Status.NominatedNodeName == "" {
		return nil
	}
	base := inst.DeepCopy()
	inst.Status.SchedulingFailures, inst.Status.NominatedNodeName = nil, ""
	if err := c.Client.Status().Patch(ctx, inst, client.MergeFrom(base)); err != nil {
		return client.IgnoreNotFound(fmt.Errorf("clear scheduling status of instance %s/%s: %w", inst.Namespace, inst.Name, err))
	}
	return nil
}

// event records an Event about inst, as Kubernetes' scheduler does.
func (c *Controller) event(ctx context.Context, inst *skiffv1alpha1.Instance, kind, reason, msg string) error {
	return events.Recorder{Client: c.Client, Component: Component}.Event(ctx, inst, kind, reason, msg)
}
