package apiserver

import (
	"fmt"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// schemes holds the two schemes the server needs: the full one (external
// and internal registrations, defaults, field labels) and an external-only
// one for naming OpenAPI definitions, which must not list __internal GVKs.
type schemes struct {
	full     *runtime.Scheme
	external *runtime.Scheme
	codecs   serializer.CodecFactory
}

func newSchemes() (*schemes, error) {
	full := runtime.NewScheme()
	if err := addExternal(full); err != nil {
		return nil, err
	}
	if err := addInternal(full); err != nil {
		return nil, err
	}
	if err := addCoreFieldLabels(full); err != nil {
		return nil, err
	}
	external := runtime.NewScheme()
	if err := addExternal(external); err != nil {
		return nil, err
	}
	return &schemes{full: full, external: external, codecs: serializer.NewCodecFactory(full)}, nil
}

// coreTypes are the upstream types skiff serves or embeds, by group version.
func coreTypes() map[schema.GroupVersion][]runtime.Object {
	return map[schema.GroupVersion][]runtime.Object{
		corev1.SchemeGroupVersion: {
			&corev1.Namespace{}, &corev1.NamespaceList{},
			&corev1.Event{}, &corev1.EventList{},
		},
		coordinationv1.SchemeGroupVersion: {&coordinationv1.Lease{}, &coordinationv1.LeaseList{}},
		autoscalingv1.SchemeGroupVersion:  {&autoscalingv1.Scale{}},
	}
}

func addExternal(s *runtime.Scheme) error {
	if err := skiffv1alpha1.AddToScheme(s); err != nil {
		return err
	}
	for gv, types := range coreTypes() {
		s.AddKnownTypes(gv, types...)
		metav1.AddToGroupVersion(s, gv)
	}
	// Meta types served unversioned (Status, APIVersions, ...).
	metav1.AddToGroupVersion(s, schema.GroupVersion{Version: "v1"})
	unversioned := schema.GroupVersion{Group: "", Version: "v1"}
	s.AddUnversionedTypes(unversioned,
		&metav1.Status{}, &metav1.APIVersions{}, &metav1.APIGroupList{},
		&metav1.APIGroup{}, &metav1.APIResourceList{})
	return nil
}

// addInternal registers every served type as its own internal version: the
// watch cache and server-side apply need an internal version, and skiff has
// no separate hub types, so no conversion functions exist.
func addInternal(s *runtime.Scheme) error {
	if err := skiffv1alpha1.AddInternalToScheme(s); err != nil {
		return err
	}
	for gv, types := range coreTypes() {
		s.AddKnownTypes(schema.GroupVersion{Group: gv.Group, Version: runtime.APIVersionInternal}, types...)
	}
	return nil
}

// fieldLabels lists the field selectors of core kinds beyond metadata.name
// and metadata.namespace; kubectl describe selects events by involvedObject.
var fieldLabels = map[schema.GroupVersionKind][]string{
	corev1.SchemeGroupVersion.WithKind("Namespace"): {"status.phase"},
	corev1.SchemeGroupVersion.WithKind("Event"): {
		"involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
		"involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
		"involvedObject.fieldPath", "reason", "reportingComponent", "source", "type",
	},
	coordinationv1.SchemeGroupVersion.WithKind("Lease"): nil,
}

func addCoreFieldLabels(s *runtime.Scheme) error {
	for gvk, labels := range fieldLabels {
		allowed := map[string]bool{"metadata.name": true, "metadata.namespace": true}
		for _, l := range labels {
			allowed[l] = true
		}
		err := s.AddFieldLabelConversionFunc(gvk, func(label, value string) (string, string, error) {
			if !allowed[label] {
				return "", "", fmt.Errorf("field label not supported: %s", label)
			}
			return label, value, nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// withoutProtobuf hides the protobuf media type: skiff types have no
// generated protobuf, and a protobuf-asking client must get JSON, not 406.
type withoutProtobuf struct {
	runtime.NegotiatedSerializer
}

func (w withoutProtobuf) SupportedMediaTypes() []runtime.SerializerInfo {
	var out []runtime.SerializerInfo
	for _, info := range w.NegotiatedSerializer.SupportedMediaTypes() {
		if info.MediaType == runtime.ContentTypeProtobuf {
			continue
		}
		out = append(out, info)
	}
	return out
}
