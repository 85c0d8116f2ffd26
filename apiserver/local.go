package apiserver

import (
	"context"
	"fmt"
	"reflect"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/client-go/tools/cache"
)

// Local reads the server's storage from inside its process: the watch
// cache's objects, each copied for the reader, with no HTTP, TLS or JSON
// in between. The controllers that run in `skiff server` list and watch
// through it (they still write through the API, so every write is
// authenticated, admitted and audited). A read through Local is not
// authorized: only code in this process, which holds the admin's identity
// anyway, can make one.
type Local struct {
	// byKind is the storage of each served kind; it is set once, before
	// ready is closed.
	byKind map[schema.GroupVersionKind]localStore
	ready  chan struct{}
	once   sync.Once
	// kinds are the served kinds, by their Go type.
	kinds map[reflect.Type]schema.GroupVersionKind
}

// localStore is what Local needs of a kind's storage.
type localStore interface {
	rest.Lister
	rest.Watcher
}

func newLocal() *Local {
	l := &Local{ready: make(chan struct{}), kinds: map[reflect.Type]schema.GroupVersionKind{}}
	for _, k := range Kinds() {
		l.kinds[reflect.TypeOf(k.New())] = k.GVK
	}
	return l
}

// Local is the in-process reader of this server's storage. Its readers
// wait until Run has built the storage.
func (s *Server) Local() *Local { return s.local }

// serve makes the storage readable.
func (l *Local) serve(in *installed) {
	l.once.Do(func() {
		l.byKind = map[schema.GroupVersionKind]localStore{}
		for k, r := range in.byKind {
			// The generic store, without the API's per-caller
			// redaction (REST.List, REST.Watch): that hides Node keys
			// from nodes only, and no node reads in process.
			l.byKind[k.GVK] = r.Store
		}
		close(l.ready)
	})
}

// ListerWatcher lists and watches the kind obj is: a typed object such as
// *v1alpha1.Instance, or a *metav1.PartialObjectMetadata whose kind is
// set (a metadata-only reader, as controller-runtime's are). It says false
// for any other object (unstructured ones) and for a kind this server does
// not store.
func (l *Local) ListerWatcher(obj runtime.Object) (cache.ListerWatcher, bool) {
	if m, ok := obj.(*metav1.PartialObjectMetadata); ok {
		gvk := m.GroupVersionKind()
		for _, served := range l.kinds {
			if served == gvk {
				return &localListerWatcher{local: l, gvk: gvk, metadata: true}, true
			}
		}
		return nil, false
	}
	gvk, ok := l.kinds[reflect.TypeOf(obj)]
	if !ok {
		return nil, false
	}
	return &localListerWatcher{local: l, gvk: gvk}, true
}

// localListerWatcher is one kind's list and watch, in every namespace.
type localListerWatcher struct {
	local *Local
	gvk   schema.GroupVersionKind
	// metadata makes every object a PartialObjectMetadata of the kind.
	metadata bool
}

var (
	_ cache.ListerWatcherWithContext = (*localListerWatcher)(nil)
	_ cache.ListerWatcher            = (*localListerWatcher)(nil)
)

// open waits for the storage to be built and returns it with what a
// read of every namespace passes it.
func (lw *localListerWatcher) open(ctx context.Context, opts metav1.ListOptions) (localStore, context.Context, *metainternalversion.ListOptions, error) {
	select {
	case <-lw.local.ready:
	case <-ctx.Done():
		return nil, nil, nil, ctx.Err()
	}
	st, ok := lw.local.byKind[lw.gvk]
	if !ok {
		return nil, nil, nil, fmt.Errorf("no storage for %v", lw.gvk)
	}
	var in metainternalversion.ListOptions
	if err := metainternalversion.Convert_v1_ListOptions_To_internalversion_ListOptions(&opts, &in, nil); err != nil {
		return nil, nil, nil, fmt.Errorf("list options: %w", err)
	}
	return st, genericapirequest.WithNamespace(ctx, metav1.NamespaceAll), &in, nil
}

// ListWithContext lists from the watch cache. Its items are shallow
// copies of the cache's objects: the list is deep-copied, so the reader
// owns what it holds.
func (lw *localListerWatcher) ListWithContext(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
	st, ctx, in, err := lw.open(ctx, opts)
	if err != nil {
		return nil, err
	}
	list, err := st.List(ctx, in)
	if err != nil {
		return nil, err
	}
	if lw.metadata {
		return lw.metadataList(list)
	}
	return list.DeepCopyObject(), nil
}

// metadataList is list's metadata alone, copied.
func (lw *localListerWatcher) metadataList(list runtime.Object) (runtime.Object, error) {
	lm, err := meta.ListAccessor(list)
	if err != nil {
		return nil, err
	}
	out := &metav1.PartialObjectMetadataList{}
	out.SetResourceVersion(lm.GetResourceVersion())
	out.SetContinue(lm.GetContinue())
	out.SetRemainingItemCount(lm.GetRemainingItemCount())
	err = meta.EachListItem(list, func(item runtime.Object) error {
		m, err := lw.metadataOf(item, false)
		if err != nil {
			return err
		}
		out.Items = append(out.Items, *m)
		return nil
	})
	return out, err
}

// metadataOf is obj's metadata alone, as the kind's; copied unless obj
// is the reader's already.
func (lw *localListerWatcher) metadataOf(obj runtime.Object, owned bool) (*metav1.PartialObjectMetadata, error) {
	a, ok := obj.(metav1.ObjectMetaAccessor)
	if !ok {
		return nil, fmt.Errorf("%T has no ObjectMeta", obj)
	}
	om, ok := a.GetObjectMeta().(*metav1.ObjectMeta)
	if !ok {
		return nil, fmt.Errorf("%T has no ObjectMeta", obj)
	}
	if !owned {
		om = om.DeepCopy()
	}
	return lw.partial(om), nil
}

// partial is the kind's PartialObjectMetadata of om, which it takes.
func (lw *localListerWatcher) partial(om *metav1.ObjectMeta) *metav1.PartialObjectMetadata {
	out := &metav1.PartialObjectMetadata{ObjectMeta: *om}
	out.SetGroupVersionKind(lw.gvk)
	return out
}

// copyMeta is a deep copy of m's metadata, read through its accessors.
func copyMeta(m metav1.Object) *metav1.ObjectMeta {
	shared := metav1.ObjectMeta{
		Name:                       m.GetName(),
		GenerateName:               m.GetGenerateName(),
		Namespace:                  m.GetNamespace(),
		UID:                        m.GetUID(),
		ResourceVersion:            m.GetResourceVersion(),
		Generation:                 m.GetGeneration(),
		CreationTimestamp:          m.GetCreationTimestamp(),
		DeletionTimestamp:          m.GetDeletionTimestamp(),
		DeletionGracePeriodSeconds: m.GetDeletionGracePeriodSeconds(),
		Labels:                     m.GetLabels(),
		Annotations:                m.GetAnnotations(),
		OwnerReferences:            m.GetOwnerReferences(),
		Finalizers:                 m.GetFinalizers(),
		ManagedFields:              m.GetManagedFields(),
	}
	return shared.DeepCopy()
}

// WatchWithContext watches the watch cache. Each event carries the
// reader's own copy of the object (the cache hands out copies, some
// wrapped to cache their serializations: those are unwrapped).
func (lw *localListerWatcher) WatchWithContext(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	st, ctx, in, err := lw.open(ctx, opts)
	if err != nil {
		return nil, err
	}
	w, err := st.Watch(ctx, in)
	if err != nil {
		return nil, err
	}
	return filterWatch(w, lw.owned), nil
}

// owned is an event with an object of the reader's own.
func (lw *localListerWatcher) owned(e watch.Event) (watch.Event, bool) {
	if c, ok := e.Object.(runtime.CacheableObject); ok {
		if m, ok := c.(metav1.Object); ok && lw.metadata && e.Type != watch.Error {
			// Its metadata alone, copied: not the whole object first.
			e.Object = lw.partial(copyMeta(m))
			return e, true
		}
		e.Object = c.GetObject()
	}
	if lw.metadata && e.Type != watch.Error {
		m, err := lw.metadataOf(e.Object, true)
		if err != nil {
			return watch.Event{Type: watch.Error, Object: &apierrors.NewInternalError(err).ErrStatus}, true
		}
		e.Object = m
	}
	return e, true
}

func (lw *localListerWatcher) List(opts metav1.ListOptions) (runtime.Object, error) {
	return lw.ListWithContext(context.Background(), opts)
}

func (lw *localListerWatcher) Watch(opts metav1.ListOptions) (watch.Interface, error) {
	return lw.WatchWithContext(context.Background(), opts)
}

// IsWatchListSemanticsUnSupported makes a reflector list, then watch: a
// list from the watch cache is already as cheap as the stream of initial
// events that would replace it.
func (lw *localListerWatcher) IsWatchListSemanticsUnSupported() bool { return true }
