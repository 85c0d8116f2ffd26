package v1alpha1

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
)

// InstanceFieldLabels are the field selectors Instances support, beyond
// metadata.name and metadata.namespace.
var InstanceFieldLabels = []string{"spec.nodeName", "status.phase"}

func addFieldLabelConversions(scheme *runtime.Scheme) error {
	allowed := map[string][]string{
		"Workload": nil,
		"Instance": InstanceFieldLabels,
		"Node":     nil,
	}
	for kind, extra := range allowed {
		extra := extra
		err := scheme.AddFieldLabelConversionFunc(SchemeGroupVersion.WithKind(kind), func(label, value string) (string, string, error) {
			switch label {
			case "metadata.name", "metadata.namespace":
				return label, value, nil
			}
			for _, l := range extra {
				if l == label {
					return label, value, nil
				}
			}
			return "", "", fmt.Errorf("field label not supported: %s", label)
		})
		if err != nil {
			return err
		}
	}
	return nil
}
