package nodeagent

import (
	"context"
	"fmt"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/apiserver/apiservertest"
)

// TestFleet runs 20 simulated nodes in one process: each registers its
// own Node and key and renews its own Lease, and Instances bound to any of
// them run.
func TestFleet(t *testing.T) {
	s := apiservertest.Start(t)
	cfg := testConfig(s, t.TempDir(), "sim")
	cfg.LeaseInterval = 200 * time.Millisecond
	f, err := NewFleet(cfg, 20, s.Admin)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	admin := adminClient(t, s, f.agent)

	keys := map[string]bool{}
	eventually(t, "20 Ready nodes with their own keys", func() bool {
		var list skiffv1alpha1.NodeList
		if admin.List(ctx, &list) != nil {
			return false
		}
		clear(keys)
		for _, n := range list.Items {
			if meta.IsStatusConditionTrue(n.Status.Conditions, skiffv1alpha1.NodeConditionReady) {
				keys[n.Spec.PublicKey] = true
			}
		}
		return len(keys) == 20
	})
	renewed := func(name string) time.Time {
		var l coordinationv1.Lease
		if admin.Get(ctx, client.ObjectKey{Namespace: skiffv1alpha1.NodeLeaseNamespace, Name: name}, &l) != nil || l.Spec.RenewTime == nil {
			return time.Time{}
		}
		return l.Spec.RenewTime.Time
	}
	first := map[string]time.Time{}
	for i := range 20 {
		first[fmt.Sprintf("sim-%d", i)] = renewed(fmt.Sprintf("sim-%d", i))
	}
	eventually(t, "every lease renewed again", func() bool {
		for name, t0 := range first {
			if !renewed(name).After(t0) {
				return false
			}
		}
		return true
	})

	for _, node := range []string{"sim-3", "sim-17"} {
		inst := boundInstance("on-"+node, node)
		createBound(t, admin, inst, node)
		var got skiffv1alpha1.Instance
		eventually(t, "instance on "+node+" Running", func() bool {
			return admin.Get(ctx, client.ObjectKeyFromObject(inst), &got) == nil && got.Status.Phase == skiffv1alpha1.InstanceRunning
		})
		if got.Status.HostIP == "" || !controllerHolds(&got) {
			t.Errorf("instance on %s: hostIP %q, finalizers %v", node, got.Status.HostIP, got.Finalizers)
		}
		if err := admin.Delete(ctx, &got); err != nil {
			t.Fatal(err)
		}
		eventually(t, "instance on "+node+" released and gone", func() bool {
			return apierrors.IsNotFound(admin.Get(ctx, client.ObjectKeyFromObject(inst), &got))
		})
	}
}
