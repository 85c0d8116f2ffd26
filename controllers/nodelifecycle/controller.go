package nodelifecycle

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/controllers/events"
)

// Component names the controller in Events.
const Component = "skiff-nodelifecycle"

// nodeNameIndex indexes Instances by spec.nodeName in the manager's
// cache. Named for this package, so that another controller's index on
// the same field cannot conflict with it.
const nodeNameIndex = "nodelifecycle.spec.nodeName"

// Controller keeps each Node's liveness verdict from two signals, its
// Lease and gossip (see judge): a node whose Lease went stale while
// gossip still reaches it is cut off from the control plane (Ready=Unknown,
// the unreachable NoExecute taint, Instances lost as their long default
// toleration runs out); a node gossip declared dead whose Lease was not
// renewed since is dead (the dead NoExecute taint: Instances lost at
// once); a node seen again loses both taints (its agent sets Ready=True
// itself). It writes status.gossip and the MemberAlive condition, and
// the Node Events NodeJoined, NodeSuspect, NodeDead, NodeRecovered and
// NodeLeft. The Instances bound to a Node that was deleted end
// Failed/NodeLost once it has been missing for missingQuarantine, and lose
// the agent finalizer, as do the deleted Instances on a lost node that its
// agent never accepted. The
// verdict comes from the signals alone, never from the
// Node's conditions, so the controller and the agent do not undo each
// other's writes. It runs as an admin: it writes Node specs.
type Controller struct {
	// Client reads from the manager's cache and writes to the apiserver.
	Client client.Client
	// Liveness says when each node's Lease was last seen renewed.
	Liveness Liveness
	// Members is the control plane's gossip member; nil judges by Leases
	// alone.
	Members WatchedMembers
	// Config holds the grace period.
	Config Config

	// missing holds the names of deleted Nodes with Instances still
	// bound to them.
	missing missingNodes
}

// WatchedMembers is a gossip view that also says when a member changes.
type WatchedMembers interface {
	Members
	Watch(ch chan<- string)
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
	// An Instance bound to a node that is already lost must be judged too,
	// and one deleted there may be for the controller to let go.
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
			return ok1 && ok2 && (old.Spec.NodeName != inst.Spec.NodeName ||
				old.DeletionTimestamp.IsZero() != inst.DeletionTimestamp.IsZero())
		},
	}
	b := builder.ControllerManagedBy(mgr).Named("nodelifecycle").
		For(&skiffv1alpha1.Node{}).
		Watches(&coordinationv1.Lease{}, leaseToNode).
		Watches(&skiffv1alpha1.Instance{}, instanceToNode, builder.WithPredicates(bound))
	if c.Members != nil {
		// Every change gossip hears of sends its node round.
		changes := make(chan event.GenericEvent, 4096)
		names := make(chan string, 4096)
		c.Members.Watch(names)
		if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
			for {
				select {
				case <-ctx.Done():
					return nil
				case name := <-names:
					node := &skiffv1alpha1.Node{}
					node.Name = name
					select {
					case changes <- event.GenericEvent{Object: node}:
					case <-ctx.Done():
						return nil
					}
				}
			}
		})); err != nil {
			return err
		}
		b = b.WatchesRawSource(source.Channel(changes, &handler.EnqueueRequestForObject{}))
	}
	return b.Complete(c)
}

// resync bounds how long a verdict stands without a new look: a gossip
// change missed by a full channel is picked up by then.
const resync = 30 * time.Second

// Reconcile judges one Node. It comes back by itself (RequeueAfter) when
// the Lease would go stale or an Instance's toleration runs out.
func (c *Controller) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var node skiffv1alpha1.Node
	if err := c.Client.Get(ctx, req.NamespacedName, &node); apierrors.IsNotFound(err) {
		return c.deleted(ctx, req.Name)
	} else if err != nil {
		return reconcile.Result{}, err
	}
	c.missing.forget(node.Name)
	sig, err := c.signals(ctx, &node)
	if err != nil {
		return reconcile.Result{}, fmt.Errorf("node %q: %w", node.Name, err)
	}
	now := time.Now()
	v := judge(sig, now, c.Config.GracePeriod)
	switch v.health {
	case healthy:
		res := reconcile.Result{RequeueAfter: min(v.recheck, resync)}
		return c.healthy(ctx, &node, v, res)
	case cutOff:
		return c.lost(ctx, &node, v, skiffv1alpha1.TaintUnreachable, "unreachable", now)
	}
	return c.lost(ctx, &node, v, skiffv1alpha1.TaintDead, "dead", now)
}

// signals gathers what is known of node now.
func (c *Controller) signals(ctx context.Context, node *skiffv1alpha1.Node) (signals, error) {
	seen, err := c.Liveness.LastSeen(ctx, node.Name)
	if err != nil {
		return signals{}, err
	}
	// A node that has not renewed yet (just registered) gets its grace
	// period from its registration.
	if created := node.CreationTimestamp.Time; created.After(seen.At) {
		seen.At = created
	}
	sig := signals{lease: seen}
	if c.Members == nil {
		return sig, nil
	}
	if m, ok := c.Members.Member(node.Name); ok {
		if m.PublicKey != node.Spec.PublicKey {
			sig.keyMismatch = true
		} else {
			sig.member = &m
		}
	}
	return sig, nil
}

// deleted finishes the Instances still bound to a Node that is gone
// (Failed/NodeLost, so that their Workloads replace them), as Kubernetes'
// pod garbage collector does for Pods of a deleted Node: nothing runs them
// any more, and an agent that registers the name again must not take
// them over. It also releases their agent finalizer, which no agent will.
//
// A name missing for less than missingQuarantine may be a Node about to
// be registered (an Instance bound ahead of its node), as Kubernetes' pod
// garbage collector allows too: its Instances are looked at again then.
func (c *Controller) deleted(ctx context.Context, name string) (reconcile.Result, error) {
	var list skiffv1alpha1.InstanceList
	if err := c.Client.List(ctx, &list, client.MatchingFields{nodeNameIndex: name}); err != nil {
		return reconcile.Result{}, fmt.Errorf("instances on deleted node %q: %w", name, err)
	}
	if len(list.Items) == 0 {
		c.missing.forget(name)
		return reconcile.Result{}, nil
	}
	if wait := missingQuarantine - c.missing.since(name); wait > 0 {
		return reconcile.Result{RequeueAfter: wait}, nil
	}
	msg := fmt.Sprintf("node %q was deleted", name)
	again := false
	for i := range list.Items {
		inst := &list.Items[i]
		err := c.evict(ctx, inst, name, msg)
		if err == nil {
			err = c.release(ctx, inst)
		}
		switch {
		case apierrors.IsConflict(err):
			again = true
		case err != nil:
			return reconcile.Result{}, err
		}
	}
	if again {
		// A stale copy: the next pass reads the newer one.
		return reconcile.Result{Requeue: true}, nil
	}
	c.missing.forget(name)
	return reconcile.Result{}, nil
}

// release takes the agent finalizer off an Instance no agent will stop:
// one bound to a deleted Node, or one being deleted on a lost node whose
// agent never accepted it. The finalizer would hold its deletion forever.
func (c *Controller) release(ctx context.Context, inst *skiffv1alpha1.Instance) error {
	if !controllerutil.RemoveFinalizer(inst, skiffv1alpha1.AgentFinalizer) {
		return nil
	}
	if err := c.Client.Update(ctx, inst); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("instance %s/%s: release %s: %w", inst.Namespace, inst.Name, skiffv1alpha1.AgentFinalizer, err)
	}
	return nil
}

// missingQuarantine is how long a Node must be missing before the
// Instances bound to it are finished.
const missingQuarantine = 10 * time.Second

// missingNodes remembers since when each node name is missing.
type missingNodes struct {
	mu sync.Mutex
	m  map[string]time.Time
}

// since is how long name has been missing, counting from the first call.
func (m *missingNodes) since(name string) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[string]time.Time{}
	}
	first, ok := m.m[name]
	if !ok {
		first = time.Now()
		m.m[name] = first
	}
	return time.Since(first)
}

func (m *missingNodes) forget(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.m, name)
}

// healthy takes the unreachable and dead taints off a node that is seen
// again, and records gossip's view.
func (c *Controller) healthy(ctx context.Context, node *skiffv1alpha1.Node, v verdict, res reconcile.Result) (reconcile.Result, error) {
	taints, hadU := withoutTaint(node.Spec.Taints, skiffv1alpha1.TaintUnreachable)
	taints, hadD := withoutTaint(taints, skiffv1alpha1.TaintDead)
	if hadU || hadD {
		node.Spec.Taints = taints
		if err := c.Client.Update(ctx, node); err != nil {
			return nodeWritten(node, reconcile.Result{}, err)
		}
	}
	if err := c.writeStatus(ctx, node, v, false); err != nil {
		return nodeWritten(node, reconcile.Result{}, err)
	}
	return res, nil
}

// lost taints a node that is cut off or dead (key says which), marks it
// NotReady, marks its Instances lost as their tolerations of the taint
// run out, and lets go of the deleted Instances its agent never accepted.
func (c *Controller) lost(ctx context.Context, node *skiffv1alpha1.Node, v verdict, key, what string, now time.Time) (reconcile.Result, error) {
	taints, taint, changed := withTaint(node.Spec.Taints, key, now)
	other := skiffv1alpha1.TaintDead
	if key == skiffv1alpha1.TaintDead {
		other = skiffv1alpha1.TaintUnreachable
	}
	taints, had := withoutTaint(taints, other)
	if changed || had {
		node.Spec.Taints = taints
		// Update fills node with the answer, so the status write below
		// carries the new resourceVersion.
		if err := c.Client.Update(ctx, node); err != nil {
			return nodeWritten(node, reconcile.Result{}, err)
		}
	}
	if err := c.writeStatus(ctx, node, v, true); err != nil {
		return nodeWritten(node, reconcile.Result{}, err)
	}
	var list skiffv1alpha1.InstanceList
	if err := c.Client.List(ctx, &list, client.MatchingFields{nodeNameIndex: node.Name}); err != nil {
		return reconcile.Result{}, fmt.Errorf("instances on node %q: %w", node.Name, err)
	}
	due, next := evictions(list.Items, taint, now)
	msg := fmt.Sprintf("node %q is %s: %s", node.Name, what, v.why)
	for _, inst := range due {
		if err := c.evict(ctx, inst, node.Name, msg); err != nil {
			if apierrors.IsConflict(err) {
				return reconcile.Result{Requeue: true}, nil // changed meanwhile: judge it again
			}
			return reconcile.Result{}, err
		}
	}
	for _, inst := range unclaimed(list.Items) {
		if err := c.release(ctx, inst); err != nil {
			if apierrors.IsConflict(err) {
				return reconcile.Result{Requeue: true}, nil
			}
			return reconcile.Result{}, err
		}
	}
	if next.IsZero() {
		return reconcile.Result{RequeueAfter: resync}, nil
	}
	return reconcile.Result{RequeueAfter: min(next.Sub(now), resync)}, nil
}

// writeStatus records status.gossip and MemberAlive (and, for a lost
// node, Ready=Unknown), and the Events of gossip's changes.
func (c *Controller) writeStatus(ctx context.Context, node *skiffv1alpha1.Node, v verdict, lost bool) error {
	from := node.Status.Gossip
	oldCond := meta.FindStatusCondition(node.Status.Conditions, skiffv1alpha1.NodeConditionMemberAlive)
	changed := false
	if lost {
		changed = markUnknown(&node.Status, "the node "+v.why)
	}
	if v.gossip != "" && v.gossip != from {
		node.Status.Gossip, changed = v.gossip, true
	}
	mismatchNews := v.memberAlive.Reason == ReasonKeyMismatch && (oldCond == nil || oldCond.Reason != ReasonKeyMismatch)
	if oldCond == nil || oldCond.Status != v.memberAlive.Status || oldCond.Reason != v.memberAlive.Reason || oldCond.Message != v.memberAlive.Message {
		meta.SetStatusCondition(&node.Status.Conditions, v.memberAlive)
		changed = true
	}
	if !changed {
		return nil
	}
	if err := c.Client.Status().Update(ctx, node); err != nil {
		return err
	}
	rec := events.Recorder{Client: c.Client, Component: Component}
	if reason, warning := gossipEvent(from, node.Status.Gossip); reason != "" {
		typ := corev1.EventTypeNormal
		if warning {
			typ = corev1.EventTypeWarning
		}
		msg := fmt.Sprintf("gossip: the node is %s (%s)", node.Status.Gossip, v.memberAlive.Message)
		if err := rec.Event(ctx, node, typ, reason, msg); err != nil {
			return err
		}
	}
	if mismatchNews {
		return rec.Event(ctx, node, corev1.EventTypeWarning, ReasonKeyMismatch, v.memberAlive.Message)
	}
	return nil
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

// evict marks inst Failed/NodeLost and records an Event (nothing for an
// Instance already finished). The workload controller replaces it; the
// agent stops it if the node comes back.
func (c *Controller) evict(ctx context.Context, inst *skiffv1alpha1.Instance, node, msg string) error {
	if inst.Finished() {
		return nil
	}
	inst.MarkNodeLost(msg)
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
