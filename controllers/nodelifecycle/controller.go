package nodelifecycle

import (
	"context"
	"errors"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/controllers/events"
)

// Component names the controller in Events.
const Component = "skiff-nodelifecycle"

// nodeNameIndex indexes Instances by spec.nodeName in the manager's
// cache. Named for this package, so that another controller's index on
// the same field cannot conflict with it.
const nodeNameIndex = "nodelifecycle.spec.nodeName"

// Controller keeps each Node's liveness verdict: a Node not seen for the
// grace period gets Ready=Unknown, phase NotReady and the unreachable
// NoExecute taint, and its Instances are marked Failed/NodeLost as their
// tolerations run out; a Node seen again loses the taint (its agent sets
// Ready=True itself). The verdict comes from Liveness alone, never from
// the Node's conditions, so the controller and the agent do not undo each
// other's writes. It runs as an admin: it writes Node specs.
type Controller struct {
	// Client reads from the manager's cache and writes to the apiserver.
	Client client.Client
	// Liveness says when each node was last seen.
	Liveness Liveness
	// Config holds the grace period.
	Config Config
}

// SetupWithManager registers the controller and its Instance index. The
// manager's scheme must know skiff.dev/v1alpha1, coordination.k8s.io/v1
// (Leases) and core v1 (Events).
func (c *Controller) SetupWithManager(mgr manager.Manager) error {
	if err := c.Config.Validate(); err != nil {
		return err
	}
	if c.Client == nil || c.Liveness == nil {
		return errors.New("node lifecycle controller: Client and Liveness are required")
	}
	err := mgr.GetFieldIndexer().IndexField(context.Background(), &skiffv1alpha1.Instance{}, nodeNameIndex, func(o client.Object) []string {
		if inst, ok := o.(*skiffv1alpha1.Instance); ok && inst.Spec.NodeName != "" {
			return []string{inst.Spec.NodeName}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("index instances by spec.nodeName: %w", err)
	}
	// A renewal is what keeps a node alive: each one sends its node round.
	leaseToNode := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		if o.GetNamespace() != skiffv1alpha1.NodeLeaseNamespace {
			return nil
		}
		return []reconcile.Request{{NamespacedName: client.ObjectKey{Name: o.GetName()}}}
	})
	// An Instance bound to a node that is already lost must be judged too.
	instanceToNode := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		if inst, ok := o.(*skiffv1alpha1.Instance); ok && inst.Spec.NodeName != "" {
			return []reconcile.Request{{NamespacedName: client.ObjectKey{Name: inst.Spec.NodeName}}}
		}
		return nil
	})
	bound := predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return true },
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
		UpdateFunc: func(e event.UpdateEvent) bool {
			old, ok1 := e.ObjectOld.(*skiffv1alpha1.Instance)
			inst, ok2 := e.ObjectNew.(*skiffv1alpha1.Instance)
			return ok1 && ok2 && old.Spec.NodeName != inst.Spec.NodeName
		},
	}
	return builder.ControllerManagedBy(mgr).Named("nodelifecycle").
		For(&skiffv1alpha1.Node{}).
		Watches(&coordinationv1.Lease{}, leaseToNode).
		Watches(&skiffv1alpha1.Instance{}, instanceToNode, builder.WithPredicates(bound)).
		Complete(c)
}

// Reconcile judges one Node. It comes back by itself (RequeueAfter) when
// the grace period or an Instance's toleration runs out.
func (c *Controller) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var node skiffv1alpha1.Node
	if err := c.Client.Get(ctx, req.NamespacedName, &node); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	seen, err := c.Liveness.LastSeen(ctx, node.Name)
	if err != nil {
		return reconcile.Result{}, fmt.Errorf("node %q: %w", node.Name, err)
	}
	// A node that has not renewed yet (just registered) gets its grace
	// period from its registration.
	if created := node.CreationTimestamp.Time; created.After(seen) {
		seen = created
	}
	now := time.Now()
	isLost, left := lost(seen, now, c.Config.GracePeriod)
	if !isLost {
		return c.reachable(ctx, &node, left)
	}
	return c.unreachable(ctx, &node, unseenMessage(seen, now, c.Config.GracePeriod), now)
}

// reachable takes the unreachable taint off a node that is seen again, and
// comes back when its grace period would run out.
func (c *Controller) reachable(ctx context.Context, node *skiffv1alpha1.Node, left time.Duration) (reconcile.Result, error) {
	res := reconcile.Result{RequeueAfter: left}
	taints, had := withoutUnreachable(node.Spec.Taints)
	if !had {
		return res, nil
	}
	node.Spec.Taints = taints
	return nodeWritten(node, res, c.Client.Update(ctx, node))
}

// unreachable taints a lost node, marks it NotReady, and marks its
// Instances lost as their tolerations run out.
func (c *Controller) unreachable(ctx context.Context, node *skiffv1alpha1.Node, msg string, now time.Time) (reconcile.Result, error) {
	taints, taint, changed := withUnreachable(node.Spec.Taints, now)
	if changed {
		node.Spec.Taints = taints
		// Update fills node with the answer, so the status write below
		// carries the new resourceVersion.
		if err := c.Client.Update(ctx, node); err != nil {
			return nodeWritten(node, reconcile.Result{}, err)
		}
	}
	if markUnknown(&node.Status, msg) {
		if err := c.Client.Status().Update(ctx, node); err != nil {
			return nodeWritten(node, reconcile.Result{}, err)
		}
	}
	var list skiffv1alpha1.InstanceList
	if err := c.Client.List(ctx, &list, client.MatchingFields{nodeNameIndex: node.Name}); err != nil {
		return reconcile.Result{}, fmt.Errorf("instances on node %q: %w", node.Name, err)
	}
	due, next := evictions(list.Items, taint, now)
	for _, inst := range due {
		if err := c.evict(ctx, inst, node.Name, msg); err != nil {
			if apierrors.IsConflict(err) {
				return reconcile.Result{Requeue: true}, nil // changed meanwhile: judge it again
			}
			return reconcile.Result{}, err
		}
	}
	if next.IsZero() {
		return reconcile.Result{}, nil
	}
	return reconcile.Result{RequeueAfter: next.Sub(now)}, nil
}

// nodeWritten turns the error of a Node write into the result: a conflict
// sends the node round again (the next pass re-reads it, which is the
// retry), a Node gone needs nothing, any other error is returned.
func nodeWritten(node *skiffv1alpha1.Node, res reconcile.Result, err error) (reconcile.Result, error) {
	switch {
	case err == nil:
		return res, nil
	case apierrors.IsConflict(err):
		return reconcile.Result{Requeue: true}, nil
	case apierrors.IsNotFound(err):
		return reconcile.Result{}, nil
	}
	return reconcile.Result{}, fmt.Errorf("node %q: %w", node.Name, err)
}

// evict marks inst Failed/NodeLost and records an Event. The workload
// controller replaces it; the agent stops it if the node comes back.
func (c *Controller) evict(ctx context.Context, inst *skiffv1alpha1.Instance, node, why string) error {
	msg := fmt.Sprintf("node %q is unreachable: %s", node, why)
	markLost(inst, msg)
	if err := c.Client.Status().Update(ctx, inst); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("instance %s/%s on node %q: %w", inst.Namespace, inst.Name, node, err)
	}
	return c.event(ctx, inst, skiffv1alpha1.ReasonNodeLost, msg)
}

// event records a Warning about inst, as Kubernetes' controllers do.
func (c *Controller) event(ctx context.Context, inst *skiffv1alpha1.Instance, reason, msg string) error {
	return events.Recorder{Client: c.Client, Component: Component}.Event(ctx, inst, corev1.EventTypeWarning, reason, msg)
}
