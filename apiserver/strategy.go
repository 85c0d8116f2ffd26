package apiserver

import (
	"context"
	"reflect"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/apiserver/pkg/storage/names"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
)

// strategy is the one create/update/delete strategy every kind uses; the
// Kind supplies what differs. status selects the status subresource's
// behaviour (spec changes ignored) over the main resource's (status
// changes ignored).
type strategy struct {
	runtime.ObjectTyper
	names.NameGenerator
	kind   *Kind
	status bool
}

var (
	_ rest.RESTCreateStrategy  = strategy{}
	_ rest.RESTUpdateStrategy  = strategy{}
	_ rest.RESTDeleteStrategy  = strategy{}
	_ rest.ResetFieldsStrategy = strategy{}
)

func newStrategy(typer runtime.ObjectTyper, k *Kind, status bool) strategy {
	return strategy{ObjectTyper: typer, NameGenerator: names.SimpleNameGenerator, kind: k, status: status}
}

func (s strategy) NamespaceScoped() bool { return s.kind.Namespaced }

// PrepareForCreate clears status (a client does not get to claim state)
// and starts the generation at 1.
func (s strategy) PrepareForCreate(ctx context.Context, obj runtime.Object) {
	if s.kind.Status {
		setField(obj, "Status", reflect.Zero(fieldOf(obj, "Status").Type()))
	}
	if m, err := meta.Accessor(obj); err == nil && hasField(obj, "Spec") {
		m.SetGeneration(1)
	}
	if s.kind.PrepareForCreate != nil {
		s.kind.PrepareForCreate(obj)
	}
}

// PrepareForUpdate keeps the half of the object this endpoint does not own
// and bumps the generation when the spec changed.
func (s strategy) PrepareForUpdate(ctx context.Context, obj, old runtime.Object) {
	if s.status {
		setField(obj, "Spec", fieldOf(old, "Spec"))
		keepOwnedMetadata(obj, old)
		return
	}
	if s.kind.Status {
		setField(obj, "Status", fieldOf(old, "Status"))
	}
	if s.kind.PrepareForUpdate != nil {
		s.kind.PrepareForUpdate(obj, old)
	}
	if !hasField(obj, "Spec") {
		return
	}
	m, err1 := meta.Accessor(obj)
	o, err2 := meta.Accessor(old)
	if err1 != nil || err2 != nil {
		return
	}
	m.SetGeneration(o.GetGeneration())
	if !apiequality.Semantic.DeepEqual(fieldOf(obj, "Spec").Interface(), fieldOf(old, "Spec").Interface()) {
		m.SetGeneration(o.GetGeneration() + 1)
	}
}

func (s strategy) Validate(ctx context.Context, obj runtime.Object) field.ErrorList {
	if s.kind.Validate != nil {
		return s.kind.Validate(obj)
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return field.ErrorList{field.InternalError(field.NewPath("metadata"), err)}
	}
	return validation.ValidateObjectMetaAccessor(m, s.kind.Namespaced, validation.NameIsDNSSubdomain, field.NewPath("metadata"))
}

func (s strategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	switch {
	case s.status && s.kind.ValidateStatusUpdate != nil:
		return s.kind.ValidateStatusUpdate(obj, old)
	case !s.status && s.kind.ValidateUpdate != nil:
		return s.kind.ValidateUpdate(obj, old)
	}
	m, err1 := meta.Accessor(obj)
	o, err2 := meta.Accessor(old)
	if err1 != nil || err2 != nil {
		return field.ErrorList{field.InternalError(field.NewPath("metadata"), err1)}
	}
	errs := validation.ValidateObjectMetaAccessorUpdate(m, o, field.NewPath("metadata"))
	return append(errs, s.Validate(ctx, obj)...)
}

func (strategy) WarningsOnCreate(ctx context.Context, obj runtime.Object) []string { return nil }

func (strategy) WarningsOnUpdate(ctx context.Context, obj, old runtime.Object) []string {
	return nil
}

func (strategy) Canonicalize(obj runtime.Object) {}

func (strategy) AllowCreateOnUpdate(ctx context.Context) bool { return false }

func (strategy) AllowUnconditionalUpdate(ctx context.Context) bool { return true }

// GetResetFields tells the field manager which fields this endpoint
// overwrites whatever the request says, so that a write records no
// ownership of them: the main endpoint resets status; the status endpoint
// resets spec and the metadata keepOwnedMetadata restores.
func (s strategy) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	if !s.kind.Status {
		return nil
	}
	reset := fieldpath.NewSet(fieldpath.MakePathOrDie("status"))
	if s.status {
		reset = fieldpath.NewSet(
			fieldpath.MakePathOrDie("spec"),
			fieldpath.MakePathOrDie("metadata", "labels"),
			fieldpath.MakePathOrDie("metadata", "annotations"),
			fieldpath.MakePathOrDie("metadata", "finalizers"),
			fieldpath.MakePathOrDie("metadata", "ownerReferences"),
		)
	}
	return map[fieldpath.APIVersion]*fieldpath.Set{
		fieldpath.APIVersion(s.kind.GVK.GroupVersion().String()): reset,
	}
}

// keepOwnedMetadata restores the metadata a status write must not change:
// labels and annotations (selectors and tools read them), finalizers and
// owner references (garbage collection and clean-up depend on them).
func keepOwnedMetadata(obj, old runtime.Object) {
	m, err1 := meta.Accessor(obj)
	o, err2 := meta.Accessor(old)
	if err1 != nil || err2 != nil {
		return
	}
	m.SetLabels(o.GetLabels())
	m.SetAnnotations(o.GetAnnotations())
	m.SetFinalizers(o.GetFinalizers())
	m.SetOwnerReferences(o.GetOwnerReferences())
}

func fieldOf(obj runtime.Object, name string) reflect.Value {
	return reflect.ValueOf(obj).Elem().FieldByName(name)
}

func hasField(obj runtime.Object, name string) bool {
	return fieldOf(obj, name).IsValid()
}

func setField(obj runtime.Object, name string, v reflect.Value) {
	f := fieldOf(obj, name)
	if f.IsValid() {
		f.Set(v)
	}
}
