package gc

import (
	"context"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// collect deletes dep if none of its owners is solid, or drops its
// references to gone and waiting owners if one is.
func (c *Collector) collect(ctx context.Context, dep *metav1.PartialObjectMetadata) error {
	refs := dep.GetOwnerReferences()
	if len(refs) == 0 {
		return nil
	}
	states := make(map[types.UID]ownerState, len(refs))
	for _, ref := range refs {
		s, err := c.ownerState(ctx, dep, ref)
		if err != nil {
			return err
		}
		states[ref.UID] = s
	}
	d := decide(dep, states)
	switch {
	case d.Delete:
		return c.delete(ctx, dep, d.Policy)
	case len(d.DropRefs) > 0:
		return c.patch(ctx, dep, func(o *metav1.PartialObjectMetadata) {
			o.OwnerReferences = withoutRefs(o.OwnerReferences, d.DropRefs)
		})
	}
	return nil
}

// ownerState looks up the owner ref names, as seen from dep. The cache
// answers when it holds the owner; an owner the cache lacks is looked up
// in the apiserver, because a cache that has not caught up with a create
// must not get a live owner's dependents deleted.
func (c *Collector) ownerState(ctx context.Context, dep *metav1.PartialObjectMetadata, ref metav1.OwnerReference) (ownerState, error) {
	gvk := schema.FromAPIVersionAndKind(ref.APIVersion, ref.Kind)
	owner := metadataOf(gvk)
	namespaced, err := c.Client.IsObjectNamespaced(owner)
	if meta.IsNoMatchError(err) {
		logf.FromContext(ctx).V(1).Info("owner of unknown kind kept as live", "owner", ref.Name, "kind", gvk)
		return ownerUnresolvable, nil
	}
	if err != nil {
		return 0, fmt.Errorf("owner %q of kind %q: %w", ref.Name, gvk, err)
	}
	key := client.ObjectKey{Name: ref.Name}
	if namespaced {
		if dep.Namespace == "" {
			return ownerUnresolvable, nil // a cluster-scoped object cannot have a namespaced owner
		}
		key.Namespace = dep.Namespace
	}
	if slices.Contains(c.Kinds, gvk) {
		err := c.Client.Get(ctx, key, owner)
		if err == nil && owner.UID == ref.UID {
			return stateOf(owner), nil
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return 0, fmt.Errorf("owner %q of kind %q: %w", ref.Name, gvk, err)
		}
	}
	switch err := c.APIReader.Get(ctx, key, owner); {
	case apierrors.IsNotFound(err):
		return ownerDangling, nil
	case err != nil:
		return 0, fmt.Errorf("owner %q of kind %q: %w", ref.Name, gvk, err)
	case owner.UID != ref.UID:
		return ownerDangling, nil
	}
	return stateOf(owner), nil
}

// delete deletes dep as it was read: the UID precondition spares a
// namesake created since, the resourceVersion one an object whose owners
// changed since (a conflict, and the caller reads it again).
func (c *Collector) delete(ctx context.Context, dep *metav1.PartialObjectMetadata, policy metav1.DeletionPropagation) error {
	logf.FromContext(ctx).V(1).Info("deleting an object whose owners are gone",
		"dependentKind", dep.Kind, "dependent", key(dep), "propagationPolicy", policy)
	uid, rv := dep.UID, dep.ResourceVersion
	err := c.Client.Delete(ctx, dep, client.PropagationPolicy(policy),
		client.Preconditions{UID: &uid, ResourceVersion: &rv})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete %s %q: %w", dep.Kind, key(dep), err)
	}
	return nil
}

// patch applies change to o's metadata, with o's resourceVersion as the
// precondition so that what was decided on o's state applies to it only.
func (c *Collector) patch(ctx context.Context, o *metav1.PartialObjectMetadata, change func(*metav1.PartialObjectMetadata)) error {
	base := client.MergeFromWithOptions(o.DeepCopy(), client.MergeFromWithOptimisticLock{})
	change(o)
	if err := c.Client.Patch(ctx, o, base); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("update %s %q: %w", o.Kind, key(o), err)
	}
	return nil
}

// finalize finishes the propagation finalizer of an owner being deleted.
func (c *Collector) finalize(ctx context.Context, owner *metav1.PartialObjectMetadata) (reconcile.Result, error) {
	switch {
	case slices.Contains(owner.Finalizers, metav1.FinalizerOrphanDependents):
		return reconcile.Result{}, c.orphan(ctx, owner)
	case slices.Contains(owner.Finalizers, metav1.FinalizerDeleteDependents):
		return c.deleteDependents(ctx, owner)
	}
	return reconcile.Result{}, nil
}

// orphan removes the reference to owner from each of its dependents, then
// the orphan finalizer. It lists from the apiserver: a dependent missed
// here would be collected as soon as the owner is gone.
func (c *Collector) orphan(ctx context.Context, owner *metav1.PartialObjectMetadata) error {
	deps, err := c.dependents(ctx, owner, true)
	if err != nil {
		return err
	}
	for _, dep := range deps {
		err := c.patch(ctx, dep, func(o *metav1.PartialObjectMetadata) {
			o.OwnerReferences = withoutRefs(o.OwnerReferences, []types.UID{owner.UID})
		})
		if err != nil {
			return err
		}
	}
	return c.removeFinalizer(ctx, owner, metav1.FinalizerOrphanDependents)
}

// deleteDependents collects the owner's dependents (it is waiting, so
// those without another owner are deleted) and removes the
// foregroundDeletion finalizer once none blocks it. The cache is enough
// here: a dependent it has not seen yet outlives the owner only to be
// collected as an orphan right after.
func (c *Collector) deleteDependents(ctx context.Context, owner *metav1.PartialObjectMetadata) (reconcile.Result, error) {
	deps, err := c.dependents(ctx, owner, false)
	if err != nil {
		return reconcile.Result{}, err
	}
	blocked := false
	for _, dep := range deps {
		if dep.DeletionTimestamp == nil {
			if err := c.collect(ctx, dep); err != nil {
				return reconcile.Result{}, err
			}
		}
		blocked = blocked || blocks(dep, owner.UID)
	}
	if blocked {
		return reconcile.Result{RequeueAfter: waitInterval}, nil
	}
	return reconcile.Result{}, c.removeFinalizer(ctx, owner, metav1.FinalizerDeleteDependents)
}

func (c *Collector) removeFinalizer(ctx context.Context, o *metav1.PartialObjectMetadata, finalizer string) error {
	return c.patch(ctx, o, func(o *metav1.PartialObjectMetadata) {
		o.Finalizers = slices.DeleteFunc(slices.Clone(o.Finalizers), func(f string) bool { return f == finalizer })
	})
}

// dependents lists the objects of every collected kind that reference
// owner: from the apiserver when live, else from the cache through the
// owner UID index. Namespaced objects have owners in their own namespace
// or cluster-scoped ones; cluster-scoped objects have cluster-scoped
// owners only.
func (c *Collector) dependents(ctx context.Context, owner *metav1.PartialObjectMetadata, live bool) ([]*metav1.PartialObjectMetadata, error) {
	var out []*metav1.PartialObjectMetadata
	for _, k := range c.Kinds {
		namespaced, err := c.Client.IsObjectNamespaced(metadataOf(k))
		if err != nil {
			return nil, fmt.Errorf("scope of %q: %w", k, err)
		}
		if !namespaced && owner.Namespace != "" {
			continue
		}
		var opts []client.ListOption
		if namespaced && owner.Namespace != "" {
			opts = append(opts, client.InNamespace(owner.Namespace))
		}
		var r client.Reader = c.Client
		if live {
			r = c.APIReader
		} else {
			opts = append(opts, client.MatchingFields{ownerUIDIndex: string(owner.UID)})
		}
		list := metadataListOf(k)
		if err := r.List(ctx, list, opts...); err != nil {
			return nil, fmt.Errorf("list %s dependents of %s %q: %w", k.Kind, owner.Kind, key(owner), err)
		}
		for i := range list.Items {
			if dep := &list.Items[i]; refersTo(dep.OwnerReferences, owner.UID) {
				dep.SetGroupVersionKind(k)
				out = append(out, dep)
			}
		}
	}
	return out, nil
}

// key names an object in errors: namespace/name, or name.
func key(o metav1.Object) string {
	if o.GetNamespace() == "" {
		return o.GetName()
	}
	return o.GetNamespace() + "/" + o.GetName()
}
