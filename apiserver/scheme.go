package apiserver

import (
	"fmt"
	goruntime "runtime"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"

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
	if err := addExecOptions(full); err != nil {
		return nil, err
	}
	external := runtime.NewScheme()
	if err := addExternal(external); err != nil {
		return nil, err
	}
	return &schemes{full: full, external: external, codecs: serializer.NewCodecFactory(full)}, nil
}

// coreTypes are the upstream types skiff serves (its Kinds outside the
// skiff.dev group) or embeds, by group version.
func coreTypes() map[schema.GroupVersion][]runtime.Object {
	types := map[schema.GroupVersion][]runtime.Object{
		autoscalingv1.SchemeGroupVersion: {&autoscalingv1.Scale{}},
		authorizationGV:                  reviewTypes(),
	}
	for _, k := range Kinds() {
		if gv := k.GVK.GroupVersion(); gv.Group != skiffv1alpha1.GroupName {
			types[gv] = append(types[gv], k.New(), k.NewList())
		}
	}
	return types
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

// addCoreFieldLabels registers the field selectors of the Kinds outside
// the skiff.dev group (whose own are registered by apis/skiff).
func addCoreFieldLabels(s *runtime.Scheme) error {
	for _, k := range Kinds() {
		if k.GVK.Group == skiffv1alpha1.GroupName {
			continue
		}
		allowed := map[string]bool{"metadata.name": true, "metadata.namespace": true}
		for _, l := range k.FieldLabels {
			allowed[l] = true
		}
		err := s.AddFieldLabelConversionFunc(k.GVK, func(label, value string) (string, string, error) {
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

// skiffSerializer is how the skiff.dev group is read and written. It
// hides the protobuf media type: skiff types have no generated protobuf,
// and a protobuf-asking client must get JSON, not 406. Its JSON finds an
// object's kind with kindMeta (jsonkind.go), not by decoding the object
// twice.
type skiffSerializer struct {
	runtime.NegotiatedSerializer
	types []runtime.SerializerInfo
}

func newSkiffSerializer(ns runtime.NegotiatedSerializer, scheme *runtime.Scheme) skiffSerializer {
	var types []runtime.SerializerInfo
	for _, info := range ns.SupportedMediaTypes() {
		switch info.MediaType {
		case runtime.ContentTypeProtobuf:
			continue
		case runtime.ContentTypeJSON:
			info = kindMetaJSON(info, scheme)
		}
		types = append(types, info)
	}
	return skiffSerializer{NegotiatedSerializer: ns, types: types}
}

func (s skiffSerializer) SupportedMediaTypes() []runtime.SerializerInfo { return s.types }

// kindMetaJSON is info, the JSON serializers of an API group (streamed
// lists, pretty printing on request), with kindMeta, and long lists
// encoded on every core (parallelLists). Watch events keep the plain
// serializer: each is one object.
func kindMetaJSON(info runtime.SerializerInfo, scheme *runtime.Scheme) runtime.SerializerInfo {
	plain := json.NewSerializerWithOptions(kindMeta{}, scheme, scheme, json.SerializerOptions{StreamingCollectionsEncoding: true})
	info.Serializer = newParallelLists(plain, goruntime.GOMAXPROCS(0))
	info.StrictSerializer = json.NewSerializerWithOptions(kindMeta{}, scheme, scheme, json.SerializerOptions{Strict: true, StreamingCollectionsEncoding: true})
	if info.PrettySerializer != nil {
		info.PrettySerializer = json.NewSerializerWithOptions(kindMeta{}, scheme, scheme, json.SerializerOptions{Pretty: true})
	}
	if info.StreamSerializer != nil {
		stream := *info.StreamSerializer
		stream.Serializer = plain
		info.StreamSerializer = &stream
	}
	return info
}
