package nodeipam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/controllers/events"
)

// Component names the controller in Events.
const Component = "skiff-nodeipam"

// ReasonCIDRNotAvailable is the Warning Event of a Node that waits for a
// subnet, as Kubernetes' node IPAM names it.
const ReasonCIDRNotAvailable = "CIDRNotAvailable"

// fullRetry is how long a Node waits before it asks again for a subnet
// of a full cluster CIDR, should it miss the wake-up of a release.
const fullRetry = 30 * time.Second

// Controller gives each Node without spec.instanceCIDR a subnet of the
// cluster CIDR and frees it when the Node is deleted. One reconciliation
// runs at a time: the allocator is marked before the write and freed if
// the write is refused, so two Nodes can never be given one subnet. It
// runs as an admin: it writes Node specs.
type Controller struct {
	// Client reads from the manager's cache and writes to the apiserver.
	Client client.Client
	// Config is the cluster CIDR and the subnets' size.
	Config Config

	mu      sync.Mutex
	alloc   *Allocator
	rebuilt bool
	// waiting are the Nodes told that no subnet is free, woken (through
	// wake) when one comes free.
	waiting map[string]bool
	wake    chan event.TypedGenericEvent[*skiffv1alpha1.Node]
}

// SetupWithManager registers the controller. The manager's scheme must
// know skiff.dev/v1alpha1 and core v1 (Events).
func (c *Controller) SetupWithManager(mgr manager.Manager) error {
	if err := c.init(); err != nil {
		return err
	}
	c.wake = make(chan event.TypedGenericEvent[*skiffv1alpha1.Node], 1024)
	// Only a Node's arrival, its departure and its CIDR matter.
	cidrChanged := predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		old, ok1 := e.ObjectOld.(*skiffv1alpha1.Node)
		n, ok2 := e.ObjectNew.(*skiffv1alpha1.Node)
		return !ok1 || !ok2 || old.Spec.InstanceCIDR != n.Spec.InstanceCIDR
	}}
	return builder.ControllerManagedBy(mgr).Named("nodeipam").
		For(&skiffv1alpha1.Node{}, builder.WithPredicates(cidrChanged)).
		WatchesRawSource(source.Channel(c.wake, &handler.TypedEnqueueRequestForObject[*skiffv1alpha1.Node]{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: 1}).
		Complete(c)
}

// init builds the (empty) allocator.
func (c *Controller) init() error {
	if c.Client == nil {
		return errors.New("node IPAM controller: Client is required")
	}
	alloc, err := NewAllocator(c.Config)
	if err != nil {
		return err
	}
	c.alloc, c.waiting = alloc, map[string]bool{}
	return nil
}

// Reconcile gives one Node a subnet if it has none, records the one it
// has, or frees the one it had if it is gone.
func (c *Controller) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.rebuild(ctx); err != nil {
		return reconcile.Result{}, err
	}
	var node skiffv1alpha1.Node
	if err := c.Client.Get(ctx, req.NamespacedName, &node); err != nil {
		if apierrors.IsNotFound(err) {
			c.release(req.Name)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, fmt.Errorf("node %q: %w", req.Name, err)
	}
	if node.Spec.InstanceCIDR != "" {
		c.occupy(ctx, &node)
		// Given a subnet by an admin while it waited: schedulable now.
		return reconcile.Result{}, c.writeSubnet(ctx, &node, "")
	}
	if !node.DeletionTimestamp.IsZero() {
		return reconcile.Result{}, nil
	}
	return c.allocate(ctx, &node)
}

// rebuild records every cached Node's subnet once, before the first
// allocation: the subnets a previous run or leader gave are all in use.
// The manager starts the controller once the Node informer has synced.
func (c *Controller) rebuild(ctx context.Context) error {
	if c.rebuilt {
		return nil
	}
	var list skiffv1alpha1.NodeList
	if err := c.Client.List(ctx, &list); err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	for i := range list.Items {
		if list.Items[i].Spec.InstanceCIDR != "" {
			c.occupy(ctx, &list.Items[i])
		}
	}
	c.rebuilt = true
	return nil
}

// occupy records the subnet a Node has.
func (c *Controller) occupy(ctx context.Context, node *skiffv1alpha1.Node) {
	delete(c.waiting, node.Name)
	p, err := netip.ParsePrefix(node.Spec.InstanceCIDR)
	if err != nil { // the API validates it: not expected
		logf.FromContext(ctx).Error(err, "node with an unparsable instanceCIDR", "node", node.Name, "instanceCIDR", node.Spec.InstanceCIDR)
		return
	}
	c.alloc.Occupy(node.Name, p)
}

// release frees a deleted Node's subnet and wakes Nodes waiting for one.
func (c *Controller) release(name string) {
	delete(c.waiting, name)
	if _, held := c.alloc.Held(name); !held {
		return
	}
	c.alloc.Release(name)
	names := make([]string, 0, len(c.waiting))
	for n := range c.waiting {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names[:min(len(names), c.alloc.Free())] {
		select {
		case c.wake <- event.TypedGenericEvent[*skiffv1alpha1.Node]{Object: &skiffv1alpha1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}}:
		default: // full: it asks again after fullRetry
		}
	}
}

// allocate gives node the lowest free subnet and writes it. The subnet
// is held before the write and freed if the write is refused; when the
// write's outcome is unknown it stays held for node, and the retry
// writes the same one.
func (c *Controller) allocate(ctx context.Context, node *skiffv1alpha1.Node) (reconcile.Result, error) {
	p, err := c.alloc.Allocate(node.Name)
	if errors.Is(err, ErrFull) {
		return reconcile.Result{RequeueAfter: fullRetry}, c.reportFull(ctx, node)
	}
	err = c.writeSubnet(ctx, node, p.String())
	switch {
	case err == nil:
		delete(c.waiting, node.Name)
		logf.FromContext(ctx).V(1).Info("subnet allocated", "node", node.Name, "instanceCIDR", p)
		return reconcile.Result{}, nil
	case apierrors.IsNotFound(err):
		c.release(node.Name)
		return reconcile.Result{}, nil
	case !mayHaveWritten(err):
		c.release(node.Name)
	}
	return reconcile.Result{}, fmt.Errorf("node %q: write instanceCIDR %s: %w", node.Name, p, err)
}

// writeSubnet sets the Node's instanceCIDR (unless cidr is empty) and
// takes the network-unavailable taint off, in one write. A Node with a
// subnet and without the taint is not written.
func (c *Controller) writeSubnet(ctx context.Context, node *skiffv1alpha1.Node, cidr string) error {
	taints := slices.DeleteFunc(slices.Clone(node.Spec.Taints), isNetworkUnavailable)
	untaint := len(taints) != len(node.Spec.Taints)
	if cidr == "" && !untaint {
		return nil
	}
	spec := map[string]any{}
	if cidr != "" {
		spec["instanceCIDR"] = cidr
	}
	if untaint {
		spec["taints"] = taints
	}
	return c.patchSpec(ctx, node, spec)
}

// patchSpec merge-patches spec fields of the Node; with taints in it the
// patch carries the resourceVersion, so that an admin's concurrent
// taint is not overwritten (a Conflict retries).
func (c *Controller) patchSpec(ctx context.Context, node *skiffv1alpha1.Node, spec map[string]any) error {
	body := map[string]any{"spec": spec}
	if _, ok := spec["taints"]; ok {
		body["metadata"] = map[string]any{"resourceVersion": node.ResourceVersion}
	}
	patch, err := json.Marshal(body)
	if err != nil {
		return err
	}
	return c.Client.Patch(ctx, node, client.RawPatch(types.MergePatchType, patch))
}

func isNetworkUnavailable(t skiffv1alpha1.Taint) bool {
	return t.Key == skiffv1alpha1.TaintNetworkUnavailable
}

// reportFull taints the Node network-unavailable (NoSchedule: the
// scheduler keeps Instances off a node that could give them no address)
// and records a Warning Event, once while the Node waits.
func (c *Controller) reportFull(ctx context.Context, node *skiffv1alpha1.Node) error {
	if !slices.ContainsFunc(node.Spec.Taints, isNetworkUnavailable) {
		taints := append(slices.Clone(node.Spec.Taints), skiffv1alpha1.Taint{Key: skiffv1alpha1.TaintNetworkUnavailable, Effect: skiffv1alpha1.TaintEffectNoSchedule})
		if err := c.patchSpec(ctx, node, map[string]any{"taints": taints}); err != nil {
			return fmt.Errorf("node %q: taint %s: %w", node.Name, skiffv1alpha1.TaintNetworkUnavailable, err)
		}
	}
	if c.waiting[node.Name] {
		return nil
	}
	msg := fmt.Sprintf("Node %s: no free /%d subnet left in the cluster CIDR %s", node.Name, c.Config.NodeCIDRMaskSize, c.Config.ClusterCIDR)
	err := events.Recorder{Client: c.Client, Component: Component}.Event(ctx, node, corev1.EventTypeWarning, ReasonCIDRNotAvailable, msg)
	if err != nil {
		return err
	}
	c.waiting[node.Name] = true
	return nil
}

// mayHaveWritten reports whether a write that failed with err may have
// been applied all the same: the connection broke, or the server timed
// out or failed midway. A refusal (invalid, conflict, forbidden) did not.
func mayHaveWritten(err error) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return true
	}
	return apierrors.IsTimeout(err) || apierrors.IsServerTimeout(err) || apierrors.IsInternalError(err) || apierrors.IsUnexpectedServerError(err)
}
