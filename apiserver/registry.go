package apiserver

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/registry/generic"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
)

// REST is a kind's main endpoint: the generic store plus what kubectl
// discovers about it (short names, categories).
type REST struct {
	*genericregistry.Store
	kind *Kind
}

var (
	_ rest.ShortNamesProvider   = (*REST)(nil)
	_ rest.CategoriesProvider   = (*REST)(nil)
	_ rest.StandardStorage      = (*REST)(nil)
	_ rest.SingularNameProvider = (*REST)(nil)
)

// ShortNames implements rest.ShortNamesProvider.
func (r *REST) ShortNames() []string { return r.kind.ShortNames }

// Categories implements rest.CategoriesProvider.
func (r *REST) Categories() []string { return r.kind.Categories }

// storeBuilder turns Kinds into storage. namespaceExists, when set, is
// consulted before creating a namespaced object.
type storeBuilder struct {
	scheme          *runtime.Scheme
	optsGetter      generic.RESTOptionsGetter
	namespaceExists func(ctx context.Context, name string) error
}

// build returns the storage of a kind and its subresources, keyed by path
// ("workloads", "workloads/status", ...).
func (b *storeBuilder) build(k *Kind) (map[string]rest.Storage, *REST, error) {
	store := &genericregistry.Store{
		NewFunc:                   k.New,
		NewListFunc:               k.NewList,
		PredicateFunc:             k.matcher,
		DefaultQualifiedResource:  k.GroupResource(),
		SingularQualifiedResource: schema.GroupResource{Group: k.GVK.Group, Resource: k.Singular},
		CreateStrategy:            newStrategy(b.scheme, k, false),
		UpdateStrategy:            newStrategy(b.scheme, k, false),
		DeleteStrategy:            newStrategy(b.scheme, k, false),
		ResetFieldsStrategy:       newStrategy(b.scheme, k, false),
		TableConvertor:            tableConvertor{kind: k},
	}
	if k.TTL > 0 {
		ttl := uint64(k.TTL.Seconds())
		store.TTLFunc = func(runtime.Object, uint64, bool) (uint64, error) { return ttl, nil }
	}
	if k.Namespaced && b.namespaceExists != nil {
		store.BeginCreate = func(ctx context.Context, obj runtime.Object, _ *metav1.CreateOptions) (genericregistry.FinishFunc, error) {
			m, err := meta.Accessor(obj)
			if err != nil {
				return nil, err
			}
			if err := b.namespaceExists(ctx, m.GetNamespace()); err != nil {
				return nil, err
			}
			return func(context.Context, bool) {}, nil
		}
	}
	if err := store.CompleteWithOptions(k.storeOptions(b.optsGetter)); err != nil {
		return nil, nil, fmt.Errorf("storage for %s: %w", k.GroupResource(), err)
	}
	main := &REST{Store: store, kind: k}
	out := map[string]rest.Storage{k.Plural: main}
	if k.Status {
		out[k.Plural+"/status"] = newStatusREST(store, newStrategy(b.scheme, k, true))
	}
	if k.Scale != nil {
		out[k.Plural+"/scale"] = &scaleREST{store: store, kind: k}
	}
	if k.Binding {
		out[k.Plural+"/binding"] = &bindingREST{store: store}
	}
	return out, main, nil
}

// attrs is the AttrFunc of every kind: labels plus metadata and the kind's
// own field selector values.
func (k *Kind) attrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, nil, err
	}
	fs := fields.Set{"metadata.name": m.GetName()}
	if k.Namespaced {
		fs["metadata.namespace"] = m.GetNamespace()
	}
	if k.Fields != nil {
		for key, v := range k.Fields(obj) {
			fs[key] = v
		}
	}
	return labels.Set(m.GetLabels()), fs, nil
}

func (k *Kind) matcher(label labels.Selector, field fields.Selector) storage.SelectionPredicate {
	p := storage.SelectionPredicate{Label: label, Field: field, GetAttrs: k.attrs}
	if k.IndexField != "" {
		p.IndexFields = []string{k.IndexField}
	}
	return p
}

// storeOptions are the kind's storage options: its attributes and, with
// an IndexField, the watch cache's trigger (which watches an event goes
// to) and index (which objects a list looks at) on that field.
func (k *Kind) storeOptions(getter generic.RESTOptionsGetter) *generic.StoreOptions {
	opts := &generic.StoreOptions{RESTOptions: getter, AttrFunc: k.attrs}
	if k.IndexField == "" {
		return opts
	}
	value := func(obj runtime.Object) string { return k.Fields(obj)[k.IndexField] }
	opts.TriggerFunc = storage.IndexerFuncs{k.IndexField: value}
	opts.Indexers = &cache.Indexers{
		storage.FieldIndex(k.IndexField): func(obj interface{}) ([]string, error) {
			o, ok := obj.(runtime.Object)
			if !ok {
				return nil, fmt.Errorf("index %s: %T is not an object", k.IndexField, obj)
			}
			return []string{value(o)}, nil
		},
	}
	return opts
}

// statusREST is the status subresource: the same store with a strategy
// that keeps the spec.
type statusREST struct {
	store *genericregistry.Store
}

func newStatusREST(main *genericregistry.Store, s strategy) *statusREST {
	st := *main
	st.UpdateStrategy = s
	st.ResetFieldsStrategy = s
	st.CreateStrategy = nil
	st.DeleteStrategy = nil
	return &statusREST{store: &st}
}

var (
	_ rest.Patcher             = (*statusREST)(nil)
	_ rest.ResetFieldsStrategy = (*statusREST)(nil)
)

func (r *statusREST) New() runtime.Object { return r.store.New() }

func (r *statusREST) Destroy() {}

func (r *statusREST) Get(ctx context.Context, name string, options *metav1.GetOptions) (runtime.Object, error) {
	return r.store.Get(ctx, name, options)
}

func (r *statusREST) Update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, createValidation rest.ValidateObjectFunc, updateValidation rest.ValidateObjectUpdateFunc, forceAllowCreate bool, options *metav1.UpdateOptions) (runtime.Object, bool, error) {
	// Subresources never create.
	return r.store.Update(ctx, name, objInfo, createValidation, updateValidation, false, options)
}

func (r *statusREST) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	return r.store.GetResetFields()
}

func (r *statusREST) ConvertToTable(ctx context.Context, obj runtime.Object, opts runtime.Object) (*metav1.Table, error) {
	return r.store.ConvertToTable(ctx, obj, opts)
}
