package nodeagent

import (
	"context"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/apiserver/apiservertest"
)

// TestInstanceLifecycleOnSim binds an Instance to an agent's node and
// follows it to Running and through a graceful delete.
func TestInstanceLifecycleOnSim(t *testing.T) {
	s := apiservertest.Start(t)
	a, _ := runAgent(t, testConfig(s, t.TempDir(), "n1"))
	admin := adminClient(t, s, a)
	ctx := context.Background()
	eventually(t, "node n1", func() bool { return admin.Get(ctx, client.ObjectKey{Name: "n1"}, &skiffv1alpha1.Node{}) == nil })

	inst := boundInstance("web", "n1")
	inst.Spec.Containers = append(inst.Spec.Containers, skiffv1alpha1.Container{Name: "sidecar", Image: "busybox:1.36"})
	inst.Spec.TerminationGracePeriodSeconds = ptr.To[int64](1)
	if err := admin.Create(ctx, inst); err != nil {
		t.Fatal(err)
	}
	if err := admin.SubResource("binding").Create(ctx, inst, &skiffv1alpha1.Binding{NodeName: "n1"}); err != nil {
		t.Fatal(err)
	}
	var got skiffv1alpha1.Instance
	eventually(t, "instance Running and Ready", func() bool {
		return admin.Get(ctx, client.ObjectKeyFromObject(inst), &got) == nil &&
			got.Status.Phase == skiffv1alpha1.InstanceRunning &&
			meta.IsStatusConditionTrue(got.Status.Conditions, skiffv1alpha1.InstanceReady)
	})
	if !controllerutil.ContainsFinalizer(&got, skiffv1alpha1.AgentFinalizer) {
		t.Errorf("finalizers %v, want %s", got.Finalizers, skiffv1alpha1.AgentFinalizer)
	}
	if len(got.Status.ContainerStatuses) != 2 || got.Status.StartTime == nil {
		t.Fatalf("status %+v", got.Status)
	}
	for _, cs := range got.Status.ContainerStatuses {
		if cs.State.Running == nil || !cs.Ready || cs.ContainerID == "" {
			t.Errorf("container %q status %+v, want running", cs.Name, cs)
		}
	}
	list, _ := a.rt.List(ctx)
	if len(list) != 2 {
		t.Fatalf("runtime holds %d containers, want 2", len(list))
	}

	// A settled Instance is not rewritten on every pass.
	rv := got.ResourceVersion
	if err := admin.Get(ctx, client.ObjectKeyFromObject(inst), &got); err != nil || got.ResourceVersion != rv {
		t.Errorf("settled instance rewritten: resourceVersion %s -> %s (%v)", rv, got.ResourceVersion, err)
	}

	if err := admin.Delete(ctx, &got); err != nil {
		t.Fatal(err)
	}
	eventually(t, "instance gone after the agent released it", func() bool {
		return apierrors.IsNotFound(admin.Get(ctx, client.ObjectKeyFromObject(inst), &got))
	})
	if list, _ := a.rt.List(ctx); len(list) != 0 {
		t.Errorf("runtime still holds %d containers after delete", len(list))
	}
}
