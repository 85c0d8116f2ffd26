package scheduler

import (
	"context"
	"fmt"

	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// With a manager, the informers' events feed the Cache, and decisions
// read its snapshot, rebuilt where the events changed it. Without one (as
// some unit tests build the controller), every decision reads every Node
// and Instance: through the informers' stores, which hand out the cached
// pointers (listing through the client would copy each object), or the
// Client. Nothing here writes to what they return.

// storeOf is the store behind a controller-runtime informer, when it is
// client-go's shared informer (it is, for the manager's cache). A
// Controller built without a manager (as unit tests do) lists through
// its Client instead.
func storeOf(inf any) toolscache.Store {
	if s, ok := inf.(interface{ GetStore() toolscache.Store }); ok {
		return s.GetStore()
	}
	return nil
}

// openStores finds the Node and Instance informers' stores.
func (c *Controller) openStores(mgr manager.Manager) error {
	ctx := context.Background()
	nodes, err := mgr.GetCache().GetInformer(ctx, &skiffv1alpha1.Node{})
	if err != nil {
		return fmt.Errorf("node informer: %w", err)
	}
	instances, err := mgr.GetCache().GetInformer(ctx, &skiffv1alpha1.Instance{})
	if err != nil {
		return fmt.Errorf("instance informer: %w", err)
	}
	c.nodeStore, c.instanceStore = storeOf(nodes), storeOf(instances)
	nodeFeed, err := nodes.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.feedNode(obj, false) },
		UpdateFunc: func(_, obj any) { c.feedNode(obj, false) },
		DeleteFunc: func(obj any) { c.feedNode(obj, true) },
	})
	if err != nil {
		return fmt.Errorf("node events: %w", err)
	}
	instanceFeed, err := instances.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.feedInstance(obj, false) },
		UpdateFunc: func(_, obj any) { c.feedInstance(obj, false) },
		DeleteFunc: func(obj any) { c.feedInstance(obj, true) },
	})
	if err != nil {
		return fmt.Errorf("instance events: %w", err)
	}
	// The informers' stores are complete before the handlers have been
	// told every object: until they have, decisions list.
	c.fed = func() bool { return nodeFeed.HasSynced() && instanceFeed.HasSynced() }
	return nil
}

// feedNode and feedInstance hand the informers' events to the Cache,
// which keeps the snapshot decisions read up to date from them.
func (c *Controller) feedNode(obj any, deleted bool) {
	if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj, deleted = d.Obj, true
	}
	n, ok := obj.(*skiffv1alpha1.Node)
	switch {
	case !ok:
	case deleted:
		c.Cache.DeleteNode(n.Name)
	default:
		c.Cache.SetNode(n)
	}
}

func (c *Controller) feedInstance(obj any, deleted bool) {
	if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj, deleted = d.Obj, true
	}
	inst, ok := obj.(*skiffv1alpha1.Instance)
	switch {
	case !ok:
	case deleted:
		c.Cache.DeleteInstance(inst)
		c.bound.Forget(client.ObjectKeyFromObject(inst))
	default:
		c.Cache.SetInstance(inst)
		if inst.Spec.NodeName != "" {
			c.bound.Forget(client.ObjectKeyFromObject(inst)) // the cache shows the bind
		}
	}
}

// listNodes returns the cached Nodes, not to be modified.
func (c *Controller) listNodes(ctx context.Context) ([]*skiffv1alpha1.Node, error) {
	if c.nodeStore != nil {
		return fromStore[skiffv1alpha1.Node](c.nodeStore), nil
	}
	var list skiffv1alpha1.NodeList
	if err := c.Client.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	out := make([]*skiffv1alpha1.Node, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out, nil
}

// listInstances returns the cached Instances, not to be modified.
func (c *Controller) listInstances(ctx context.Context) ([]*skiffv1alpha1.Instance, error) {
	if c.instanceStore != nil {
		return fromStore[skiffv1alpha1.Instance](c.instanceStore), nil
	}
	var list skiffv1alpha1.InstanceList
	if err := c.Client.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	out := make([]*skiffv1alpha1.Instance, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out, nil
}

func fromStore[T any](s toolscache.Store) []*T {
	items := s.List()
	out := make([]*T, 0, len(items))
	for _, it := range items {
		if v, ok := it.(*T); ok {
			out = append(out, v)
		}
	}
	return out
}
