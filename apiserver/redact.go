package apiserver

import (
	"context"

	"k8s.io/apimachinery/pkg/api/meta"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
)

// Get, List and Watch apply the kind's Redact, when it has one, to what
// they return; the store's objects are never changed.

// Get implements rest.Getter.
func (r *REST) Get(ctx context.Context, name string, opts *metav1.GetOptions) (runtime.Object, error) {
	obj, err := r.Store.Get(ctx, name, opts)
	if err != nil || r.kind.Redact == nil {
		return obj, err
	}
	return r.kind.Redact(ctx, obj), nil
}

// List implements rest.Lister.
func (r *REST) List(ctx context.Context, opts *metainternalversion.ListOptions) (runtime.Object, error) {
	list, err := r.Store.List(ctx, opts)
	if err != nil || r.kind.Redact == nil {
		return list, err
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return nil, err
	}
	changed := false
	for i, item := range items {
		if seen := r.kind.Redact(ctx, item); seen != item {
			items[i], changed = seen, true
		}
	}
	if !changed {
		return list, nil
	}
	// The list may share its items with the watch cache: a new list, with
	// the untouched items copied and the redacted ones replaced.
	out := r.NewListFunc()
	if err := meta.SetList(out, items); err != nil {
		return nil, err
	}
	from, err1 := meta.ListAccessor(list)
	to, err2 := meta.ListAccessor(out)
	if err1 == nil && err2 == nil {
		to.SetResourceVersion(from.GetResourceVersion())
		to.SetContinue(from.GetContinue())
		to.SetRemainingItemCount(from.GetRemainingItemCount())
	}
	return out, nil
}

// Watch implements rest.Watcher.
func (r *REST) Watch(ctx context.Context, opts *metainternalversion.ListOptions) (watch.Interface, error) {
	w, err := r.Store.Watch(ctx, opts)
	if err != nil || r.kind.Redact == nil {
		return w, err
	}
	return filterWatch(w, func(e watch.Event) (watch.Event, bool) {
		if e.Type == watch.Error || e.Type == watch.Bookmark {
			return e, true
		}
		// The watch cache hands out its events wrapped, to encode each
		// once for every watcher; a redacted copy goes out unwrapped.
		obj := e.Object
		if c, ok := obj.(runtime.CacheableObject); ok {
			obj = c.GetObject()
		}
		if seen := r.kind.Redact(ctx, obj); seen != obj {
			e.Object = seen
		}
		return e, true
	}), nil
}
