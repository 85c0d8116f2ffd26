package apiserver

import (
	"context"
	"fmt"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/apimachinery/pkg/util/validation/field"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/registry/rest"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
)

// scaleREST is the autoscaling/v1 scale subresource of any kind with a
// ScaleAccess: `kubectl scale` and autoscalers use it.
type scaleREST struct {
	store *genericregistry.Store
	kind  *Kind
}

var (
	_ rest.Patcher                  = (*scaleREST)(nil)
	_ rest.GroupVersionKindProvider = (*scaleREST)(nil)
)

func (r *scaleREST) New() runtime.Object { return &autoscalingv1.Scale{} }

func (r *scaleREST) Destroy() {}

// GroupVersionKind tells discovery the subresource speaks autoscaling/v1 Scale.
func (r *scaleREST) GroupVersionKind(schema.GroupVersion) schema.GroupVersionKind {
	return autoscalingv1.SchemeGroupVersion.WithKind("Scale")
}

func (r *scaleREST) Get(ctx context.Context, name string, options *metav1.GetOptions) (runtime.Object, error) {
	obj, err := r.store.Get(ctx, name, options)
	if err != nil {
		return nil, err
	}
	return r.toScale(obj)
}

func (r *scaleREST) Update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, createValidation rest.ValidateObjectFunc, updateValidation rest.ValidateObjectUpdateFunc, forceAllowCreate bool, options *metav1.UpdateOptions) (runtime.Object, bool, error) {
	info := &scaleUpdatedObjectInfo{name: name, req: objInfo, rest: r}
	obj, _, err := r.store.Update(ctx, name, info,
		r.parentCreateValidation(createValidation), r.parentUpdateValidation(updateValidation), false, options)
	if err != nil {
		return nil, false, err
	}
	scale, err := r.toScale(obj)
	return scale, false, err
}

func (r *scaleREST) toScale(obj runtime.Object) (*autoscalingv1.Scale, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	spec, status, selector, err := r.kind.Scale.Get(obj)
	if err != nil {
		return nil, err
	}
	return &autoscalingv1.Scale{
		ObjectMeta: metav1.ObjectMeta{
			Name: m.GetName(), Namespace: m.GetNamespace(), UID: m.GetUID(),
			ResourceVersion: m.GetResourceVersion(), CreationTimestamp: m.GetCreationTimestamp(),
		},
		Spec:   autoscalingv1.ScaleSpec{Replicas: spec},
		Status: autoscalingv1.ScaleStatus{Replicas: status, Selector: selector},
	}, nil
}

// The validation callbacks (admission) see the Scale, not the parent.
func (r *scaleREST) parentCreateValidation(v rest.ValidateObjectFunc) rest.ValidateObjectFunc {
	if v == nil {
		return nil
	}
	return func(ctx context.Context, obj runtime.Object) error {
		scale, err := r.toScale(obj)
		if err != nil {
			return err
		}
		return v(ctx, scale)
	}
}

func (r *scaleREST) parentUpdateValidation(v rest.ValidateObjectUpdateFunc) rest.ValidateObjectUpdateFunc {
	if v == nil {
		return nil
	}
	return func(ctx context.Context, obj, old runtime.Object) error {
		scale, err := r.toScale(obj)
		if err != nil {
			return err
		}
		oldScale, err := r.toScale(old)
		if err != nil {
			return err
		}
		return v(ctx, scale, oldScale)
	}
}

// scaleUpdatedObjectInfo applies a Scale update to the parent object,
// carrying managed fields across so server-side apply on /scale works.
type scaleUpdatedObjectInfo struct {
	name string
	req  rest.UpdatedObjectInfo
	rest *scaleREST
}

func (i *scaleUpdatedObjectInfo) Preconditions() *metav1.Preconditions {
	return i.req.Preconditions()
}

func (i *scaleUpdatedObjectInfo) UpdatedObject(ctx context.Context, oldObj runtime.Object) (runtime.Object, error) {
	if oldObj == nil {
		// Subresources never create: a missing parent is NotFound.
		return nil, apierrors.NewNotFound(i.rest.kind.GroupResource(), i.name)
	}
	parent := oldObj.DeepCopyObject()
	m, err := meta.Accessor(parent)
	if err != nil {
		return nil, err
	}
	gv := i.rest.kind.GVK.GroupVersion()
	handler := managedfields.NewScaleHandler(m.GetManagedFields(), gv, managedfields.ResourcePathMappings{
		gv.String(): fieldpath.MakePathOrDie(toInterfaces(i.rest.kind.Scale.SpecReplicasPath)...),
	})
	oldScale, err := i.rest.toScale(parent)
	if err != nil {
		return nil, err
	}
	if oldScale.ManagedFields, err = handler.ToSubresource(); err != nil {
		return nil, fmt.Errorf("scale managed fields: %w", err)
	}
	obj, err := i.req.UpdatedObject(ctx, oldScale)
	if err != nil {
		return nil, err
	}
	scale, ok := obj.(*autoscalingv1.Scale)
	if !ok {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("expected an autoscaling/v1 Scale, got %T", obj))
	}
	if errs := validateScale(scale); len(errs) > 0 {
		return nil, apierrors.NewInvalid(autoscalingv1.SchemeGroupVersion.WithKind("Scale").GroupKind(), i.name, errs)
	}
	if scale.ResourceVersion != "" {
		// An explicit resourceVersion on the Scale is a precondition.
		m.SetResourceVersion(scale.ResourceVersion)
	}
	i.rest.kind.Scale.Set(parent, scale.Spec.Replicas)
	entries, err := handler.ToParent(scale.ManagedFields)
	if err != nil {
		return nil, fmt.Errorf("scale managed fields: %w", err)
	}
	m.SetManagedFields(entries)
	return parent, nil
}

func validateScale(s *autoscalingv1.Scale) field.ErrorList {
	if s.Spec.Replicas < 0 {
		return field.ErrorList{field.Invalid(field.NewPath("spec", "replicas"), s.Spec.Replicas, "must be greater than or equal to 0")}
	}
	return nil
}

func toInterfaces(path []string) []interface{} {
	out := make([]interface{}, len(path))
	for i, p := range path {
		out[i] = p
	}
	return out
}
