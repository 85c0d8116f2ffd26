package apiserver

import (
	"context"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/util/dryrun"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// bindingREST is an Instance's binding subresource: it sets spec.nodeName
// once. Binding a bound Instance is a Conflict, even to the same node, so
// two schedulers racing never both believe they won. The bind also adds
// the agent finalizer, which the node's agent would otherwise add with a
// write of its own before the first start: an Instance bound to a node
// is held until that node's agent (or, for a deleted Node, the node
// lifecycle controller) lets it go.
type bindingREST struct {
	store *genericregistry.Store
}

var _ rest.NamedCreater = (*bindingREST)(nil)

func (r *bindingREST) New() runtime.Object { return &skiffv1alpha1.Binding{} }

func (r *bindingREST) Destroy() {}

func (r *bindingREST) Create(ctx context.Context, name string, obj runtime.Object, createValidation rest.ValidateObjectFunc, options *metav1.CreateOptions) (runtime.Object, error) {
	binding, ok := obj.(*skiffv1alpha1.Binding)
	if !ok {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("expected a Binding, got %T", obj))
	}
	if errs := validateBinding(name, binding); len(errs) > 0 {
		return nil, apierrors.NewInvalid(skiffv1alpha1.SchemeGroupVersion.WithKind("Binding").GroupKind(), name, errs)
	}
	if createValidation != nil {
		if err := createValidation(ctx, binding); err != nil {
			return nil, err
		}
	}
	key, err := r.store.KeyFunc(ctx, name)
	if err != nil {
		return nil, err
	}
	gr := r.store.DefaultQualifiedResource
	out := &skiffv1alpha1.Instance{}
	err = r.store.Storage.GuaranteedUpdate(ctx, key, out, false, nil, storage.SimpleUpdate(func(cur runtime.Object) (runtime.Object, error) {
		inst := cur.(*skiffv1alpha1.Instance)
		if inst.DeletionTimestamp != nil {
			return nil, apierrors.NewConflict(gr, name, fmt.Errorf("instance is being deleted"))
		}
		if inst.Spec.NodeName != "" {
			return nil, apierrors.NewConflict(gr, name, fmt.Errorf("instance is already bound to node %q", inst.Spec.NodeName))
		}
		if uid := binding.UID; uid != "" && uid != inst.UID {
			return nil, apierrors.NewConflict(gr, name, fmt.Errorf("binding is for uid %q, instance has uid %q", uid, inst.UID))
		}
		inst.Spec.NodeName = binding.NodeName
		if !slices.Contains(inst.Finalizers, skiffv1alpha1.AgentFinalizer) {
			inst.Finalizers = append(inst.Finalizers, skiffv1alpha1.AgentFinalizer)
		}
		meta.SetStatusCondition(&inst.Status.Conditions, metav1.Condition{
			Type: skiffv1alpha1.InstanceScheduled, Status: metav1.ConditionTrue,
			Reason: "Bound", Message: fmt.Sprintf("bound to node %q", binding.NodeName),
			ObservedGeneration: inst.Generation,
		})
		return inst, nil
	}), dryrun.IsDryRun(options.DryRun), nil)
	if err != nil {
		return nil, err
	}
	return &metav1.Status{Status: metav1.StatusSuccess, Code: 201}, nil
}

func validateBinding(name string, b *skiffv1alpha1.Binding) field.ErrorList {
	var errs field.ErrorList
	if b.Name != "" && b.Name != name {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), b.Name, "must match the instance name in the URL"))
	}
	if b.NodeName == "" {
		errs = append(errs, field.Required(field.NewPath("nodeName"), "the node to bind to"))
	} else {
		for _, msg := range validation.NameIsDNSSubdomain(b.NodeName, false) {
			errs = append(errs, field.Invalid(field.NewPath("nodeName"), b.NodeName, msg))
		}
	}
	return errs
}
