package mcp_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// createMany creates n objects made by mk with 32 writers.
func createMany(t *testing.T, c client.Client, n int, mk func(i int) client.Object) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 32 {
				if err := c.Create(context.Background(), mk(i)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestAnswersFitWith10000Instances: with 10,000 Instances in the
// cluster no answer is over the cap, and paging gives each exactly once.
func TestAnswersFitWith10000Instances(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 10,000 Instances")
	}
	c := startCluster(t, 0, false)
	const instances = 10000
	createMany(t, c.admin, instances, func(i int) client.Object {
		return &skiffv1alpha1.Instance{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("inst-%05d-with-a-fairly-long-name", i), Namespace: "default", Labels: map[string]string{"app": fmt.Sprintf("app-%d", i%50)}},
			Spec:       skiffv1alpha1.InstanceSpec{InstanceTemplateSpec: skiffv1alpha1.InstanceTemplateSpec{Containers: []skiffv1alpha1.Container{{Name: "main", Image: "registry.example/team/app:1.2.3"}}}},
		}
	})
	createMany(t, c.admin, 200, func(i int) client.Object {
		return &skiffv1alpha1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%03d", i)}, Status: skiffv1alpha1.NodeStatus{}}
	})
	createMany(t, c.admin, 300, func(i int) client.Object {
		return &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("ev-%03d", i), Namespace: "default"}, Type: corev1.EventTypeWarning, Reason: "FailedScheduling",
			InvolvedObject: corev1.ObjectReference{Kind: "Instance", Name: "inst-00001-with-a-fairly-long-name", Namespace: "default"},
			Message:        "0/200 nodes are available: 200 insufficient cpu. " + fmt.Sprintf("%0400d", i)}
	})
	createMany(t, c.admin, 50, func(i int) client.Object {
		return &skiffv1alpha1.Workload{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("app-%d", i), Namespace: "default"}, Spec: skiffv1alpha1.WorkloadSpec{
			Replicas: ptr.To(int32(200)),
			Template: skiffv1alpha1.InstanceTemplate{Metadata: skiffv1alpha1.TemplateMetadata{Labels: map[string]string{"app": fmt.Sprintf("app-%d", i)}},
				Spec: skiffv1alpha1.InstanceTemplateSpec{Containers: []skiffv1alpha1.Container{{Name: "main", Image: "busybox"}}}}}}
	})
	s := c.connect(t, sessionOpts{})

	seen := map[string]bool{}
	token, pages := "", 0
	for {
		out := s.must("list_instances", map[string]any{"limit": 500, "continue": token})
		pages++
		for _, it := range items(out) {
			name := it["name"].(string)
			if seen[name] {
				t.Fatalf("%s on two pages", name)
			}
			seen[name] = true
		}
		next, _ := out["continue"].(string)
		if next == "" {
			break
		}
		token = next
	}
	if len(seen) != instances {
		t.Fatalf("paging gave %d Instances, want %d", len(seen), instances)
	}
	t.Logf("%d Instances in %d pages", instances, pages)
	// Every read, asked for as much as it gives (s.call checks each size).
	for name, args := range map[string]map[string]any{
		"get_cluster_status": {},
		"list_nodes":         {"limit": 500},
		"list_workloads":     {"limit": 500},
		"list_events":        {"limit": 500},
		"describe":           {"kind": "Instance", "name": "inst-00001-with-a-fairly-long-name"},
		"get_node":           {"name": "node-001"},
		"get_workload":       {"name": "app-1"},
		"plan_workload":      {"name": "app-1"},
	} {
		out := s.must(name, args)
		if name == "plan_workload" && len(out["actions"].([]any)) == 0 {
			t.Fatalf("plan_workload of 200 replicas: no actions")
		}
	}
}
