package nodeagent

import (
	"fmt"
	"maps"
	goruntime "runtime"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// nodeLabels are the labels the agent registers its Node with: the
// well-known ones a kubelet sets, which manifests written for Kubernetes
// select and spread by (anti-affinity by host name, topology spread by
// zone), then --labels, which win as a kubelet's --node-labels do
// (Validate refuses one that contradicts --zone or --region). The API
// server lets a registering node set them, as Kubernetes' NodeRestriction
// does.
func nodeLabels(cfg Config) map[string]string {
	labels := map[string]string{
		corev1.LabelHostname:   cfg.NodeName,
		corev1.LabelOSStable:   goruntime.GOOS,
		corev1.LabelArchStable: goruntime.GOARCH,
	}
	if cfg.Zone != "" {
		labels[corev1.LabelTopologyZone] = cfg.Zone
	}
	if cfg.Region != "" {
		labels[corev1.LabelTopologyRegion] = cfg.Region
	}
	maps.Copy(labels, cfg.Labels)
	return labels
}

// validateTopology checks --zone and --region as label values, and
// against --labels setting the same labels.
func validateTopology(cfg *Config) error {
	for _, t := range []struct{ flag, label, value string }{
		{"--zone", corev1.LabelTopologyZone, cfg.Zone},
		{"--region", corev1.LabelTopologyRegion, cfg.Region},
	} {
		if t.value == "" {
			continue
		}
		if msgs := validation.IsValidLabelValue(t.value); len(msgs) > 0 {
			return fmt.Errorf("%s %q: %s", t.flag, t.value, msgs[0])
		}
		if v, ok := cfg.Labels[t.label]; ok && v != t.value {
			return fmt.Errorf("%s %q: --labels sets %s=%s", t.flag, t.value, t.label, v)
		}
	}
	// A Node's name may be a DNS subdomain (253 characters), a label
	// value no longer than 63.
	if _, ok := cfg.Labels[corev1.LabelHostname]; !ok {
		if msgs := validation.IsValidLabelValue(cfg.NodeName); len(msgs) > 0 {
			return fmt.Errorf("--node-name %q: not a valid %s label value: %s (or set the label with --labels)", cfg.NodeName, corev1.LabelHostname, msgs[0])
		}
	}
	return nil
}
