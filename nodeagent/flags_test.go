package nodeagent

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

func TestParseTaints(t *testing.T) {
	got, err := ParseTaints([]string{"dedicated=gpu:NoSchedule", "spot:PreferNoSchedule"})
	want := []skiffv1alpha1.Taint{
		{Key: "dedicated", Value: "gpu", Effect: skiffv1alpha1.TaintEffectNoSchedule},
		{Key: "spot", Effect: skiffv1alpha1.TaintEffectPreferNoSchedule},
	}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("ParseTaints: %v %v", got, err)
	}
	for _, bad := range []string{"dedicated=gpu", "x:Sometimes", ":NoSchedule"} {
		if _, err := ParseTaints([]string{bad}); err == nil {
			t.Errorf("ParseTaints(%q) accepted", bad)
		}
	}
}

func TestParseResourcesAndAllocatable(t *testing.T) {
	reserved, err := ParseResources(map[string]string{"cpu": "500m", "memory": "1Gi"})
	if err != nil {
		t.Fatal(err)
	}
	capacity, _ := ParseResources(map[string]string{"cpu": "2", "memory": "512Mi", "pods": "110"})
	alloc := allocatable(capacity, reserved)
	if cpu := alloc[corev1.ResourceCPU]; cpu.String() != "1500m" {
		t.Errorf("allocatable cpu %s, want 1500m", cpu.String())
	}
	if mem := alloc[corev1.ResourceMemory]; mem.Sign() != 0 {
		t.Errorf("allocatable memory %s, want 0 (reserved exceeds capacity)", mem.String())
	}
	if pods := alloc[corev1.ResourcePods]; pods.Value() != 110 {
		t.Errorf("allocatable pods %s, want 110", pods.String())
	}
	for _, bad := range []map[string]string{{"cpu": "lots"}, {"memory": "-1Gi"}} {
		if _, err := ParseResources(bad); err == nil {
			t.Errorf("ParseResources(%v) accepted", bad)
		}
	}
}
