package scheduler

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// Component names the scheduler in Events.
const Component = "skiff-scheduler"

// Controller binds pending Instances (no spec.nodeName) to nodes through
// the binding subresource. Instances that fit nowhere get Scheduled=False
// with the no-fit message and a FailedScheduling Event, and are tried again
// when Nodes or other Instances change, and every retryInterval.
type Controller struct {
	Client    client.Client
	Scheduler *Scheduler
	Cache     *Cache
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
	retryAll := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
		var list skiffv1alpha1.InstanceList
		if err := c.Client.List(ctx, &list); err != nil {
			return nil
		}
		var reqs []reconcile.Request
		for _, inst := range list.Items {
			if inst.Spec.NodeName == "" {
				reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&inst)})
			}
		}
		return reqs
	})
	freed := predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return true },
		GenericFunc: func(event.GenericEvent) bool { return false },
		UpdateFunc: func(e event.UpdateEvent) bool {
			inst, ok := e.ObjectNew.(*skiffv1alpha1.Instance)
			return ok && finished(inst)
		},
	}
	return builder.ControllerManagedBy(mgr).Named("scheduler").
		For(&skiffv1alpha1.Instance{}, builder.WithPredicates(pending)).
		Watches(&skiffv1alpha1.Node{}, retryAll).
		Watches(&skiffv1alpha1.Instance{}, retryAll, builder.WithPredicates(freed)).
		Complete(c)
}

// Reconcile schedules one pending Instance.
func (c *Controller) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var inst skiffv1alpha1.Instance
	if err := c.Client.Get(ctx, req.NamespacedName, &inst); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if inst.Spec.NodeName != "" || !inst.DeletionTimestamp.IsZero() {
		return reconcile.Result{}, nil
	}
	var nodes skiffv1alpha1.NodeList
	if err := c.Client.List(ctx, &nodes); err != nil {
		return reconcile.Result{}, err
	}
	var instances skiffv1alpha1.InstanceList
	if err := c.Client.List(ctx, &instances); err != nil {
		return reconcile.Result{}, err
	}
	nodePtrs := make([]*skiffv1alpha1.Node, len(nodes.Items))
	for i := range nodes.Items {
		nodePtrs[i] = &nodes.Items[i]
	}
	instPtrs := make([]*skiffv1alpha1.Instance, len(instances.Items))
	for i := range instances.Items {
		instPtrs[i] = &instances.Items[i]
	}
	res := c.Scheduler.Schedule(&inst, c.Cache.Snapshot(nodePtrs, instPtrs))
	if res.Node == "" {
		return reconcile.Result{RequeueAfter: retryInterval}, c.unschedulable(ctx, &inst, res.Message(len(nodePtrs)))
	}
	c.Cache.Assume(&inst, res.Node)
	err := c.Client.SubResource("binding").Create(ctx, &inst, &skiffv1alpha1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: inst.Name, Namespace: inst.Namespace, UID: inst.UID},
		NodeName:   res.Node,
	})
	if err != nil {
		c.Cache.Forget(inst.UID)
		if apierrors.IsConflict(err) {
			return reconcile.Result{Requeue: true}, nil // bound or changed meanwhile: look again
		}
		return reconcile.Result{}, fmt.Errorf("bind %s/%s to %s: %w", inst.Namespace, inst.Name, res.Node, err)
	}
	return reconcile.Result{}, c.event(ctx, &inst, corev1.EventTypeNormal, "Scheduled",
		fmt.Sprintf("Successfully assigned %s/%s to %s", inst.Namespace, inst.Name, res.Node))
}

// unschedulable records why inst fits nowhere, once per distinct reason.
func (c *Controller) unschedulable(ctx context.Context, inst *skiffv1alpha1.Instance, msg string) error {
	cond := meta.FindStatusCondition(inst.Status.Conditions, skiffv1alpha1.InstanceScheduled)
	if cond != nil && cond.Status == metav1.ConditionFalse && cond.Message == msg {
		return nil
	}
	meta.SetStatusCondition(&inst.Status.Conditions, metav1.Condition{
		Type: skiffv1alpha1.InstanceScheduled, Status: metav1.ConditionFalse, Reason: "Unschedulable",
		Message: msg, ObservedGeneration: inst.Generation,
	})
	if err := c.Client.Status().Update(ctx, inst); err != nil {
		return client.IgnoreNotFound(err)
	}
	return c.event(ctx, inst, corev1.EventTypeWarning, "FailedScheduling", msg)
}

// event records an Event about inst, as Kubernetes' scheduler does.
func (c *Controller) event(ctx context.Context, inst *skiffv1alpha1.Instance, kind, reason, msg string) error {
	now := metav1.Now()
	ev := &corev1.Event{
		// Named as client-go names events: the object and a nanosecond time.
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", inst.Name, now.UnixNano()), Namespace: inst.Namespace},
		InvolvedObject: corev1.ObjectReference{
			APIVersion: skiffv1alpha1.SchemeGroupVersion.String(), Kind: "Instance",
			Namespace: inst.Namespace, Name: inst.Name, UID: inst.UID, ResourceVersion: inst.ResourceVersion,
		},
		Reason: reason, Message: msg, Type: kind, Count: 1,
		FirstTimestamp: now, LastTimestamp: now,
		Source: corev1.EventSource{Component: Component},
	}
	if err := c.Client.Create(ctx, ev); err != nil {
		return fmt.Errorf("event %s for %s/%s: %w", reason, inst.Namespace, inst.Name, err)
	}
	return nil
}
