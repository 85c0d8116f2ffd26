package nodeagent

import (
	"context"
	"fmt"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/apiserver/apiservertest"
)

// TestNoWritesFromAStaleView: an agent that starts Instances writes each
// one's status from the Instance as it last wrote it, never
// from the cache's older copy: no write of its conflicts (each conflict
// was a wasted write, a retry and a back-off before Running).
func TestNoWritesFromAStaleView(t *testing.T) {
	s := apiservertest.Start(t)
	a, _ := runAgent(t, testConfig(s, t.TempDir(), "n1"))
	admin := adminClient(t, s, a)
	ctx := context.Background()
	eventually(t, "node n1", func() bool { return admin.Get(ctx, client.ObjectKey{Name: "n1"}, &skiffv1alpha1.Node{}) == nil })
	before := s.Conflicts(t, "instances") // the test binary's count so far
	const n = 30
	for i := range n {
		createBound(t, admin, boundInstance(fmt.Sprintf("web-%d", i), "n1"), "n1")
	}
	eventually(t, "every Instance Running", func() bool {
		var list skiffv1alpha1.InstanceList
		if admin.List(ctx, &list) != nil {
			return false
		}
		running := 0
		for _, inst := range list.Items {
			if inst.Status.Phase == skiffv1alpha1.InstanceRunning {
				running++
			}
		}
		return running == n
	})
	if got := s.Conflicts(t, "instances") - before; got != 0 {
		t.Errorf("%d of the agent's Instance writes conflicted, want none", got)
	}
}
