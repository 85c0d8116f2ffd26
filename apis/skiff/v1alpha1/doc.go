// Package v1alpha1 is the skiff.dev/v1alpha1 API: Workload, Instance and
// Node. The same Go types are registered as the internal version, so the
// apiserver needs no conversion code; defaults are scheme defaulting
// functions (applied on decode, as Kubernetes does) and validation returns
// field.ErrorList with exact paths.
//
// +k8s:deepcopy-gen=package
// +k8s:openapi-gen=true
// +k8s:openapi-model-package=dev.skiff.v1alpha1
// +kubebuilder:object:generate=true
// +groupName=skiff.dev
package v1alpha1
