package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupName is the API group of every skiff kind.
const GroupName = "skiff.dev"

// SchemeGroupVersion is the group and version of this package's types.
var SchemeGroupVersion = schema.GroupVersion{Group: GroupName, Version: "v1alpha1"}

// InternalGroupVersion is the hub version the apiserver converts through.
// skiff registers its v1alpha1 types under it too, so no conversion exists.
var InternalGroupVersion = schema.GroupVersion{Group: GroupName, Version: runtime.APIVersionInternal}

var (
	// SchemeBuilder adds the external types, defaults and field labels.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes, addDefaultingFuncs, addFieldLabelConversions, addConversionFuncs)
	// AddToScheme registers skiff.dev/v1alpha1 in a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// Resource returns a GroupResource of this group.
func Resource(resource string) schema.GroupResource {
	return SchemeGroupVersion.WithResource(resource).GroupResource()
}

func knownTypes() []runtime.Object {
	return []runtime.Object{
		&Workload{}, &WorkloadList{},
		&Instance{}, &InstanceList{}, &Binding{}, &InstanceLogOptions{},
		&Node{}, &NodeList{},
	}
}

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(SchemeGroupVersion, knownTypes()...)
	metav1.AddToGroupVersion(scheme, SchemeGroupVersion)
	return nil
}

// AddInternalToScheme registers the same Go types as the internal version.
// Only the apiserver needs it; clients must not call it.
func AddInternalToScheme(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(InternalGroupVersion, knownTypes()...)
	return nil
}
