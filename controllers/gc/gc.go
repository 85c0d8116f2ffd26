package gc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// ownerUIDIndex is the cache index of every collected kind: the UIDs its
// ownerReferences name.
const ownerUIDIndex = "metadata.ownerReferences.uid"

// Intervals of the level-triggered re-reads.
const (
	// waitInterval re-checks an owner waiting for its dependents, in case
	// an event was missed.
	waitInterval = time.Minute
	// conflictRetry re-reads an object that changed under a write.
	conflictRetry = 200 * time.Millisecond
)

// Collector deletes objects whose owners are all gone and finishes the
// orphan and foregroundDeletion finalizers. It runs one controller per
// kind in Kinds; see the package documentation for the rules.
type Collector struct {
	// Client reads from the manager's cache and writes to the apiserver.
	Client client.Client
	// APIReader reads from the apiserver, bypassing the cache. The cache
	// may lag behind a create, so what cannot be undone is decided on
	// what the apiserver says: that an owner is gone, and which objects
	// still reference an owner that orphans them.
	APIReader client.Reader
	// Kinds take part in garbage collection, as owners, dependents or
	// both. All must be served by the apiserver.
	Kinds []schema.GroupVersionKind
}

// DefaultKinds are the kinds skiff collects: Workloads own Instances;
// Nodes and Namespaces are here so that their orphan or foreground
// deletion completes.
func DefaultKinds() []schema.GroupVersionKind {
	return []schema.GroupVersionKind{
		skiffv1alpha1.SchemeGroupVersion.WithKind("Workload"),
		skiffv1alpha1.SchemeGroupVersion.WithKind("Instance"),
		skiffv1alpha1.SchemeGroupVersion.WithKind("Node"),
		corev1.SchemeGroupVersion.WithKind("Namespace"),
	}
}

// SetupWithManager indexes every kind by owner UID in the manager's cache
// and registers one controller per kind, named gc-<kind>.<group>. Each
// watches its own kind and, to hear of owners and dependents changing,
// every other kind in Kinds.
func (c *Collector) SetupWithManager(mgr manager.Manager) error {
	if c.Client == nil || c.APIReader == nil {
		return errors.New("garbage collector: Client and APIReader are required")
	}
	for _, k := range c.Kinds {
		err := mgr.GetFieldIndexer().IndexField(context.Background(), metadataOf(k), ownerUIDIndex, func(o client.Object) []string {
			return ownerUIDs(o)
		})
		if err != nil {
			return fmt.Errorf("garbage collector: index %q by owner UID: %w", k, err)
		}
	}
	for _, k := range c.Kinds {
		namespaced, err := c.Client.IsObjectNamespaced(metadataOf(k))
		if err != nil {
			return fmt.Errorf("garbage collector: scope of %q: %w", k, err)
		}
		b := builder.ControllerManagedBy(mgr).Named(controllerName(k)).
			For(metadataOf(k), builder.WithPredicates(selfChanged))
		for _, other := range c.Kinds {
			b = b.Watches(metadataOf(other), handler.EnqueueRequestsFromMapFunc(c.related(k, namespaced)),
				builder.WithPredicates(linkChanged))
		}
		if err := b.Complete(&reconciler{Collector: c, kind: k}); err != nil {
			return fmt.Errorf("garbage collector for %q: %w", k, err)
		}
	}
	return nil
}

func controllerName(k schema.GroupVersionKind) string {
	name := "gc-" + strings.ToLower(k.Kind)
	if k.Group != "" {
		name += "." + k.Group
	}
	return name
}

// metadataOf is an empty metadata-only object of kind k, which makes the
// cache and the clients use metadata informers and requests.
func metadataOf(k schema.GroupVersionKind) *metav1.PartialObjectMetadata {
	o := &metav1.PartialObjectMetadata{}
	o.SetGroupVersionKind(k)
	return o
}

func metadataListOf(k schema.GroupVersionKind) *metav1.PartialObjectMetadataList {
	l := &metav1.PartialObjectMetadataList{}
	l.SetGroupVersionKind(k.GroupVersion().WithKind(k.Kind + "List"))
	return l
}

// selfChanged passes an object's own events that can change what the
// collector does with it: creation, and changes to its owners, its
// finalizers or its deletion. Status writes do not pass.
var selfChanged = predicate.Funcs{
	CreateFunc:  func(event.CreateEvent) bool { return true },
	DeleteFunc:  func(event.DeleteEvent) bool { return false },
	GenericFunc: func(event.GenericEvent) bool { return true },
	UpdateFunc:  func(e event.UpdateEvent) bool { return gcMetadataChanged(e.ObjectOld, e.ObjectNew) },
}

// linkChanged passes the events of an object that its owners and
// dependents care about: it went, began deleting, or changed owners or
// finalizers.
var linkChanged = predicate.Funcs{
	CreateFunc:  func(event.CreateEvent) bool { return false },
	DeleteFunc:  func(event.DeleteEvent) bool { return true },
	GenericFunc: func(event.GenericEvent) bool { return false },
	UpdateFunc:  func(e event.UpdateEvent) bool { return gcMetadataChanged(e.ObjectOld, e.ObjectNew) },
}

func gcMetadataChanged(old, cur client.Object) bool {
	return (old.GetDeletionTimestamp() == nil) != (cur.GetDeletionTimestamp() == nil) ||
		!slices.Equal(old.GetFinalizers(), cur.GetFinalizers()) ||
		!equality.Semantic.DeepEqual(old.GetOwnerReferences(), cur.GetOwnerReferences())
}

// related maps an event on any object o to the objects of kind k that
// must look again: o's owners of kind k (o may have stopped blocking
// them) and o's dependents of kind k, found through the owner UID index
// (o may be gone or deleting them).
func (c *Collector) related(k schema.GroupVersionKind, namespaced bool) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		var reqs []reconcile.Request
		for _, ref := range o.GetOwnerReferences() {
			gv, err := schema.ParseGroupVersion(ref.APIVersion)
			if err != nil || gv.Group != k.Group || ref.Kind != k.Kind {
				continue
			}
			key := client.ObjectKey{Name: ref.Name}
			if namespaced {
				key.Namespace = o.GetNamespace()
			}
			reqs = append(reqs, reconcile.Request{NamespacedName: key})
		}
		deps := metadataListOf(k)
		if err := c.Client.List(ctx, deps, client.MatchingFields{ownerUIDIndex: string(o.GetUID())}); err != nil {
			return reqs // the cache is stopping; nothing to reconcile then
		}
		for i := range deps.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&deps.Items[i])})
		}
		return reqs
	}
}

// reconciler collects the objects of one kind.
type reconciler struct {
	*Collector
	kind schema.GroupVersionKind
}

// Reconcile re-reads one object and, if it is being deleted, finishes its
// propagation finalizer; otherwise collects it if its owners are gone.
func (r *reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	obj := metadataOf(r.kind)
	if err := r.Client.Get(ctx, req.NamespacedName, obj); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	var res reconcile.Result
	var err error
	if obj.DeletionTimestamp != nil {
		res, err = r.finalize(ctx, obj)
	} else {
		err = r.collect(ctx, obj)
	}
	if apierrors.IsConflict(err) {
		return reconcile.Result{RequeueAfter: conflictRetry}, nil
	}
	return res, err
}
