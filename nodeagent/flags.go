package nodeagent

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// ParseTaints reads --taints: key=value:Effect or key:Effect, comma-separated.
func ParseTaints(specs []string) ([]skiffv1alpha1.Taint, error) {
	var out []skiffv1alpha1.Taint
	for _, spec := range specs {
		kv, effect, ok := strings.Cut(spec, ":")
		if !ok {
			return nil, fmt.Errorf("--taints %q: want key=value:Effect", spec)
		}
		key, value, _ := strings.Cut(kv, "=")
		t := skiffv1alpha1.Taint{Key: key, Value: value, Effect: skiffv1alpha1.TaintEffect(effect)}
		switch t.Effect {
		case skiffv1alpha1.TaintEffectNoSchedule, skiffv1alpha1.TaintEffectPreferNoSchedule, skiffv1alpha1.TaintEffectNoExecute:
		default:
			return nil, fmt.Errorf("--taints %q: effect must be NoSchedule, PreferNoSchedule or NoExecute", spec)
		}
		if key == "" {
			return nil, fmt.Errorf("--taints %q: empty key", spec)
		}
		out = append(out, t)
	}
	return out, nil
}

// ParseResources reads --reserved: name=quantity pairs such as cpu=500m.
func ParseResources(pairs map[string]string) (corev1.ResourceList, error) {
	out := corev1.ResourceList{}
	for name, value := range pairs {
		q, err := resource.ParseQuantity(value)
		if err != nil {
			return nil, fmt.Errorf("--reserved %s=%s: %w", name, value, err)
		}
		if q.Sign() < 0 {
			return nil, fmt.Errorf("--reserved %s=%s: must not be negative", name, value)
		}
		out[corev1.ResourceName(name)] = q
	}
	return out, nil
}
