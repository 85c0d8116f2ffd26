package nodeagent

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// TestSettledStatusIsNotRewritten: a pass that observes nothing new must
// not write, or every write's watch event would trigger the next pass.
func TestSettledStatusIsNotRewritten(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := skiffv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	inst := boundInstance("web", "n1")
	inst.Spec.NodeName = "n1"
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(inst).WithStatusSubresource(inst).Build()
	r := &instanceReconciler{client: c, node: "n1", hostIP: "192.0.2.1", backoff: DefaultBackoff}
	started := time.Now().Add(-time.Minute)
	results := []containerResult{{status: skiffv1alpha1.ContainerStatus{
		Name: "main", Image: "busybox:1.36", ContainerID: "c1", Ready: true,
		State: skiffv1alpha1.ContainerState{Running: &skiffv1alpha1.ContainerStateRunning{StartedAt: apiTime(started)}},
	}}}
	ctx := context.Background()
	rv := func() string {
		var got skiffv1alpha1.Instance
		if err := c.Get(ctx, client.ObjectKeyFromObject(inst), &got); err != nil {
			t.Fatal(err)
		}
		*inst = got
		return got.ResourceVersion
	}
	before := rv()
	if err := r.reportStatus(ctx, inst, nil, results, ""); err != nil {
		t.Fatal(err)
	}
	first := rv()
	if first == before || inst.Status.Phase != skiffv1alpha1.InstanceRunning {
		t.Fatalf("first pass wrote nothing: phase %q", inst.Status.Phase)
	}
	if err := r.reportStatus(ctx, inst, nil, results, ""); err != nil {
		t.Fatal(err)
	}
	if second := rv(); second != first {
		t.Errorf("an unchanged status was written again: resourceVersion %s -> %s", first, second)
	}
}
