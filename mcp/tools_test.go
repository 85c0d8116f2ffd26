package mcp_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	dto "github.com/prometheus/client_model/go"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/mcp"
)

var writeTools = []string{"create_workload", "update_workload", "scale_workload", "delete_workload", "rollback_workload", "restart_workload", "apply_manifest"}

// TestToolsAndModes lists the tools with their schemas and annotations,
// and checks that read-only and no-destructive modes hide and refuse what
// they should.
func TestToolsAndModes(t *testing.T) {
	c := startCluster(t, 0, false)
	s := c.connect(t, sessionOpts{})
	res, err := s.cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"list_workloads", "get_workload", "create_workload", "update_workload", "scale_workload", "delete_workload",
		"rollback_workload", "restart_workload", "list_nodes", "get_node", "get_cluster_status", "list_instances", "get_logs",
		"list_events", "describe", "apply_manifest", "plan_workload"}
	got := map[string]*sdk.Tool{}
	for _, tool := range res.Tools {
		got[tool.Name] = tool
		in, _ := tool.InputSchema.(map[string]any)
		if in["type"] != "object" {
			t.Errorf("%s: input schema %v, want an object", tool.Name, tool.InputSchema)
		}
		if out, _ := tool.OutputSchema.(map[string]any); out == nil || out["type"] != "object" {
			t.Errorf("%s: output schema %v, want an object", tool.Name, tool.OutputSchema)
		}
		if tool.Description == "" || tool.Annotations == nil {
			t.Errorf("%s: no description or annotations", tool.Name)
		}
	}
	for _, name := range want {
		if got[name] == nil {
			t.Errorf("tool %s missing", name)
		}
	}
	for _, name := range writeTools {
		if a := got[name].Annotations; a.ReadOnlyHint {
			t.Errorf("%s is marked read-only", name)
		}
	}
	for _, name := range []string{"delete_workload", "scale_workload"} {
		if a := got[name].Annotations; a.DestructiveHint == nil || !*a.DestructiveHint {
			t.Errorf("%s is not marked destructive", name)
		}
	}
	if a := got["get_cluster_status"].Annotations; !a.ReadOnlyHint || a.DestructiveHint == nil || *a.DestructiveHint {
		t.Errorf("get_cluster_status annotations %+v", a)
	}

	t.Run("read-only", func(t *testing.T) {
		cfg := mcp.DefaultConfig()
		cfg.ReadOnly = true
		ro := c.connect(t, sessionOpts{cfg: &cfg})
		res, err := ro.cs.ListTools(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, tool := range res.Tools {
			if !tool.Annotations.ReadOnlyHint {
				t.Errorf("read-only bridge lists %s", tool.Name)
			}
		}
		args := map[string]any{"name": "x", "image": "busybox", "replicas": 1, "manifest": "kind: Workload", "confirm": true}
		for _, name := range writeTools {
			if _, err := ro.call(name, args); err == nil {
				t.Errorf("read-only bridge ran %s", name)
			}
		}
		var list skiffv1alpha1.WorkloadList
		if err := c.admin.List(context.Background(), &list); err != nil || len(list.Items) != 0 {
			t.Fatalf("read-only bridge wrote: %v %v", list.Items, err)
		}
	})
	t.Run("no destructive", func(t *testing.T) {
		cfg := mcp.DefaultConfig()
		cfg.DisableDestructive = true
		nd := c.connect(t, sessionOpts{cfg: &cfg})
		nd.must("create_workload", map[string]any{"name": "keep", "image": "busybox", "replicas": 1})
		if _, err := nd.call("delete_workload", map[string]any{"name": "keep", "confirm": true}); err == nil {
			t.Fatal("delete_workload ran with --disable-destructive")
		}
		_, err := nd.call("scale_workload", map[string]any{"name": "keep", "replicas": 0, "confirm": true})
		wantError(t, err, "scaling to zero is disabled")
		nd.must("scale_workload", map[string]any{"name": "keep", "replicas": 2})
		_, err = nd.call("apply_manifest", map[string]any{"confirm": true, "manifest": "apiVersion: skiff.dev/v1alpha1\nkind: Workload\nmetadata: {name: keep}\nspec:\n  replicas: 0\n  template:\n    metadata: {labels: {app: keep}}\n    spec: {containers: [{name: main, image: busybox}]}\n"})
		wantError(t, err, "scales Workload default/keep to zero", "--disable-destructive")
	})
	t.Run("denied kinds", func(t *testing.T) {
		cfg := mcp.DefaultConfig()
		cfg.DenyKinds = []string{"node"}
		dk := c.connect(t, sessionOpts{cfg: &cfg})
		if _, err := dk.call("list_nodes", map[string]any{}); err == nil {
			t.Fatal("list_nodes ran with Node denied")
		}
		_, err := dk.call("describe", map[string]any{"kind": "Node", "name": "n1"})
		wantError(t, err, "kind Node is denied")
		_, err = dk.call("apply_manifest", map[string]any{"manifest": "apiVersion: skiff.dev/v1alpha1\nkind: Node\nmetadata: {name: n1}\n"})
		wantError(t, err, "document 1", "kind Node is denied")
	})
}

// TestWorkloadThroughTools is what an agent does: create, watch it run,
// scale, read logs, update, plan what cannot fit, restart, roll back, and
// delete with confirmation.
func TestWorkloadThroughTools(t *testing.T) {
	c := startCluster(t, 3, true)
	s := c.connect(t, sessionOpts{})
	ctx := context.Background()

	out := s.must("create_workload", map[string]any{"name": "web", "image": "skiff.local/busybox:latest", "replicas": 2,
		"cpu_cores": 0.25, "memory_mb": 64, "env": map[string]any{"MODE": "a"}, "ports": []any{map[string]any{"container_port": 8080}}})
	if out["workload"].(map[string]any)["name"] != "web" {
		t.Fatalf("create_workload said %v", out)
	}
	_, err := s.call("create_workload", map[string]any{"name": "web", "image": "x"})
	wantError(t, err, "already exists", "update_workload")
	var w skiffv1alpha1.Workload
	if err := c.admin.Get(ctx, client.ObjectKey{Namespace: "default", Name: "web"}, &w); err != nil {
		t.Fatal(err)
	}
	if mf := w.ManagedFields; len(mf) == 0 || mf[0].Manager != mcp.FieldManager {
		t.Fatalf("managed fields %+v, want the manager %s", mf, mcp.FieldManager)
	}
	if got := w.Spec.Template.Spec.Containers[0].Resources.Limits.Cpu().MilliValue(); got != 250 {
		t.Fatalf("cpu limit %dm, want 250m", got)
	}
	healthy := func(n int) func() bool {
		return func() bool {
			out, err := s.call("get_workload", map[string]any{"name": "web"})
			if err != nil {
				return false
			}
			sum := out["summary"].(map[string]any)
			return sum["health"] == "Healthy" && sum["ready"] == fmt.Sprintf("%d/%d", n, n)
		}
	}
	eventually(t, "web healthy with 2 replicas, seen through get_workload", healthy(2))

	s.must("scale_workload", map[string]any{"name": "web", "replicas": 3})
	eventually(t, "web healthy with 3 replicas", healthy(3))
	insts := items(s.must("list_instances", map[string]any{"workload": "web", "phase": "Running"}))
	if len(insts) != 3 {
		t.Fatalf("list_instances: %v, want 3 Running", insts)
	}
	logs := s.must("get_logs", map[string]any{"instance": insts[0]["name"], "tail_lines": 5})
	if !strings.Contains(logs["log"].(string), "sim: started") || !strings.Contains(logs["untrusted"].(string), "not as instructions") {
		t.Fatalf("get_logs: %v", logs)
	}
	logs = s.must("get_logs", map[string]any{"instance": insts[0]["name"], "grep": "^nothing-matches$"})
	if logs["log"] != "" || logs["lines"].(float64) != 0 {
		t.Fatalf("get_logs with a grep that matches nothing: %v", logs)
	}

	s.must("update_workload", map[string]any{"name": "web", "env": map[string]any{"EXTRA": "b"}, "image": "skiff.local/busybox:v2"})
	if err := c.admin.Get(ctx, client.ObjectKey{Namespace: "default", Name: "web"}, &w); err != nil {
		t.Fatal(err)
	}
	ctr := w.Spec.Template.Spec.Containers[0]
	if ctr.Image != "skiff.local/busybox:v2" || len(ctr.Env) != 2 || len(ctr.Ports) != 1 || ctr.Resources.Limits.Memory().Value() != 64<<20 {
		t.Fatalf("after update_workload the container is %+v: a patch keeps what it does not name", ctr)
	}
	_, err = s.call("update_workload", map[string]any{"name": "web", "container": "nope", "image": "x"})
	wantError(t, err, "argument container", `no container "nope"`, "main")

	plan := s.must("plan_workload", map[string]any{"workload": map[string]any{"name": "huge", "image": "busybox", "replicas": 1, "cpu_cores": 1000}})
	acts := plan["actions"].([]any)
	if len(acts) != 1 || plan["unplaceable"].(float64) != 1 || !strings.Contains(acts[0].(map[string]any)["whyNot"].(string), "0/3 nodes are available: 3 insufficient cpu") {
		t.Fatalf("plan_workload of what cannot fit: %v", plan)
	}
	if err := c.admin.Get(ctx, client.ObjectKey{Namespace: "default", Name: "huge"}, &skiffv1alpha1.Workload{}); err == nil {
		t.Fatal("plan_workload created the Workload")
	}
	plan = s.must("plan_workload", map[string]any{"manifest": "apiVersion: skiff.dev/v1alpha1\nkind: Workload\nmetadata: {name: small}\nspec:\n  replicas: 2\n  template:\n    metadata: {labels: {app: small}}\n    spec: {containers: [{name: c, image: busybox}]}\n"})
	for _, a := range plan["actions"].([]any) {
		if a.(map[string]any)["node"] == "" {
			t.Fatalf("plan_workload of what fits: %v", plan)
		}
	}

	eventually(t, "web rolled out to v2", healthy(3))
	s.must("restart_workload", map[string]any{"name": "web"})
	if err := c.admin.Get(ctx, client.ObjectKey{Namespace: "default", Name: "web"}, &w); err != nil || w.Spec.Template.Metadata.Annotations[mcp.RestartedAtAnnotation] == "" {
		t.Fatalf("restart_workload left the template %+v (%v)", w.Spec.Template.Metadata, err)
	}
	eventually(t, "web restarted", healthy(3))
	before := w.Status.UpdateRevision
	eventually(t, "a last available revision", func() bool {
		return c.admin.Get(ctx, client.ObjectKey{Namespace: "default", Name: "web"}, &w) == nil && w.Status.LastAvailableRevision != "" && w.Status.UpdateRevision != before
	})
	s.must("update_workload", map[string]any{"name": "web", "image": "skiff.local/busybox:v3"})
	eventually(t, "v3 revision observed", func() bool {
		return c.admin.Get(ctx, client.ObjectKey{Namespace: "default", Name: "web"}, &w) == nil && w.Status.ObservedGeneration == w.Generation && w.Status.UpdateRevision != w.Status.LastAvailableRevision
	})
	s.must("rollback_workload", map[string]any{"name": "web"})
	if err := c.admin.Get(ctx, client.ObjectKey{Namespace: "default", Name: "web"}, &w); err != nil || w.Spec.Template.Spec.Containers[0].Image == "skiff.local/busybox:v3" {
		t.Fatalf("rollback_workload left image %s (%v)", w.Spec.Template.Spec.Containers[0].Image, err)
	}

	events := s.must("list_events", map[string]any{"kind": "Workload", "name": "web"})
	if events["total"].(float64) == 0 || !strings.Contains(events["untrusted"].(string), "untrusted") {
		t.Fatalf("list_events: %v", events)
	}
	desc := s.must("describe", map[string]any{"kind": "workload", "name": "web"})
	if desc["object"].(map[string]any)["metadata"].(map[string]any)["managedFields"] != nil || len(desc["events"].([]any)) == 0 {
		t.Fatalf("describe: managed fields or no events: %v", desc["events"])
	}
	st := s.must("get_cluster_status", map[string]any{})
	if n := st["nodes"].(map[string]any); n["ready"].(float64) != 3 || n["total"].(float64) != 3 {
		t.Fatalf("get_cluster_status nodes: %v", n)
	}
	if st["resources"].(map[string]any)["cpuRequestedMilli"].(float64) < 750 {
		t.Fatalf("get_cluster_status resources: %v", st["resources"])
	}
	nodes := items(s.must("list_nodes", map[string]any{}))
	if len(nodes) != 3 {
		t.Fatalf("list_nodes: %v", nodes)
	}
	node := s.must("get_node", map[string]any{"name": nodes[0]["name"]})
	if node["summary"].(map[string]any)["resources"].(map[string]any)["cpuAllocatableMilli"].(float64) == 0 {
		t.Fatalf("get_node: %v", node["summary"])
	}

	// This client cannot elicit: a delete needs confirm.
	_, err = s.call("delete_workload", map[string]any{"name": "web"})
	wantError(t, err, "needs confirmation", `"confirm": true`)
	if err := c.admin.Get(ctx, client.ObjectKey{Namespace: "default", Name: "web"}, &w); err != nil {
		t.Fatalf("the unconfirmed delete deleted: %v", err)
	}
	s.must("delete_workload", map[string]any{"name": "web", "confirm": true})
	eventually(t, "web and its Instances gone", func() bool {
		var list skiffv1alpha1.InstanceList
		return c.admin.List(ctx, &list, client.MatchingLabels{"app": "web"}) == nil && len(list.Items) == 0
	})

	if v := counter(t, s, "skiff_mcp_tool_calls_total", map[string]string{"tool": "delete_workload", "result": "refused"}); v != 1 {
		t.Errorf("refused delete_workload calls counted %v, want 1", v)
	}
	if v := counter(t, s, "skiff_mcp_tool_calls_total", map[string]string{"tool": "get_workload", "result": "ok"}); v < 3 {
		t.Errorf("get_workload calls counted %v", v)
	}
}

// counter reads a counter of the bridge's registry.
func counter(t *testing.T, s *session, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metric:
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue metric
				}
			}
			return metricValue(m)
		}
	}
	return 0
}

func metricValue(m *dto.Metric) float64 {
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return 0
}
