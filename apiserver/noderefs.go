package apiserver

import (
	"context"

	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	"k8s.io/apimachinery/pkg/fields"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// referenceChecker reports whether an Instance bound to node references
// the Secret or ConfigMap (resource "secrets" or "configmaps") namespace/name.
type referenceChecker func(ctx context.Context, node, resource, namespace, name string) bool

// instanceRefs answers referenceChecker from the Instances' watch cache.
type instanceRefs struct {
	// instances is set once storage exists.
	instances *REST
}

func (r *instanceRefs) references(ctx context.Context, node, resource, namespace, name string) bool {
	if r.instances == nil || namespace == "" {
		return false
	}
	ctx = genericapirequest.WithNamespace(ctx, namespace)
	obj, err := r.instances.List(ctx, &metainternalversion.ListOptions{
		ResourceVersion: "0",
		FieldSelector:   fields.OneTermEqualSelector("spec.nodeName", node),
	})
	if err != nil {
		return false
	}
	list, ok := obj.(*skiffv1alpha1.InstanceList)
	if !ok {
		return false
	}
	for i := range list.Items {
		if references(&list.Items[i].Spec.InstanceTemplateSpec, resource, name) {
			return true
		}
	}
	return false
}

// references reports whether spec uses the Secret or ConfigMap name: in
// a container's or init container's environment, as an image pull secret,
// or as a volume.
func references(spec *skiffv1alpha1.InstanceTemplateSpec, resource, name string) bool {
	secrets := resource == "secrets"
	if secrets {
		for _, ref := range spec.ImagePullSecrets {
			if ref.Name == name {
				return true
			}
		}
	}
	for _, v := range spec.Volumes {
		if secrets && v.Secret != nil && v.Secret.SecretName == name ||
			!secrets && v.ConfigMap != nil && v.ConfigMap.Name == name {
			return true
		}
	}
	for _, c := range append(append([]skiffv1alpha1.Container(nil), spec.InitContainers...), spec.Containers...) {
		for _, e := range c.Env {
			switch s := e.ValueFrom; {
			case s == nil:
			case secrets && s.SecretKeyRef != nil && s.SecretKeyRef.Name == name:
				return true
			case !secrets && s.ConfigMapKeyRef != nil && s.ConfigMapKeyRef.Name == name:
				return true
			}
		}
		for _, e := range c.EnvFrom {
			if secrets && e.SecretRef != nil && e.SecretRef.Name == name ||
				!secrets && e.ConfigMapRef != nil && e.ConfigMapRef.Name == name {
				return true
			}
		}
	}
	return false
}
