package mcp_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// TestResourceSubscription: a subscriber to a Workload's resource hears
// when someone else scales it, in the old (resources/subscribe) and the
// new (subscriptions/listen) protocol.
func TestResourceSubscription(t *testing.T) {
	c := startCluster(t, 0, false)
	ctx := context.Background()
	for _, protocol := range []string{"2025-11-25", "2026-07-28"} {
		t.Run(protocol, func(t *testing.T) {
			updated := make(chan string, 16)
			s := c.connect(t, sessionOpts{protocol: protocol, client: &sdk.ClientOptions{
				ResourceUpdatedHandler: func(_ context.Context, req *sdk.ResourceUpdatedNotificationRequest) {
					updated <- req.Params.URI
				},
			}})
			name := "sub-" + strings.ReplaceAll(protocol, "-", "")
			s.must("create_workload", map[string]any{"name": name, "image": "busybox", "replicas": 1})
			uri := "skiff://workloads/default/" + name
			res, err := s.cs.ReadResource(ctx, &sdk.ReadResourceParams{URI: uri})
			if err != nil {
				t.Fatal(err)
			}
			var body map[string]any
			if err := json.Unmarshal([]byte(res.Contents[0].Text), &body); err != nil || body["summary"].(map[string]any)["name"] != name {
				t.Fatalf("read %s: %v %v", uri, res.Contents[0].Text, err)
			}
			if err := s.cs.Subscribe(ctx, &sdk.SubscribeParams{URI: uri}); err != nil {
				t.Fatal(err)
			}
			// The subscription may be registered after Subscribe returns
			// (the new protocol's listen): scale until a notification comes.
			deadline := time.After(30 * time.Second)
			for replicas := int32(2); ; replicas++ {
				var w skiffv1alpha1.Workload
				if err := c.admin.Get(ctx, client.ObjectKey{Namespace: "default", Name: name}, &w); err != nil {
					t.Fatal(err)
				}
				w.Spec.Replicas = ptr.To(replicas)
				if err := c.admin.Update(ctx, &w); err != nil {
					t.Fatal(err)
				}
				select {
				case got := <-updated:
					if got != uri {
						t.Fatalf("notified of %s, want %s", got, uri)
					}
					return
				case <-time.After(500 * time.Millisecond):
				case <-deadline:
					t.Fatalf("no notifications/resources/updated for %s after kubectl-style scales", uri)
				}
			}
		})
	}
}

// TestResourcesAndPrompts reads the cluster status resource and gets
// each prompt.
func TestResourcesAndPrompts(t *testing.T) {
	c := startCluster(t, 1, true)
	s := c.connect(t, sessionOpts{})
	ctx := context.Background()
	s.must("create_workload", map[string]any{"name": "web", "image": "busybox", "replicas": 1})
	tmpl, err := s.cs.ListResourceTemplates(ctx, nil)
	if err != nil || len(tmpl.ResourceTemplates) != 2 {
		t.Fatalf("resource templates: %v %v", tmpl, err)
	}
	res, err := s.cs.ReadResource(ctx, &sdk.ReadResourceParams{URI: "skiff://cluster/status"})
	if err != nil || !strings.Contains(res.Contents[0].Text, `"total":1`) {
		t.Fatalf("cluster status: %v %v", res, err)
	}
	if _, err := s.cs.ReadResource(ctx, &sdk.ReadResourceParams{URI: "skiff://nodes/sim-0"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.cs.ReadResource(ctx, &sdk.ReadResourceParams{URI: "skiff://workloads/default/nope"}); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("reading a missing workload: %v", err)
	}
	eventually(t, "web running", func() bool {
		out, err := s.call("get_workload", map[string]any{"name": "web"})
		return err == nil && out["summary"].(map[string]any)["health"] == "Healthy"
	})
	for name, args := range map[string]map[string]string{
		"deploy":   {"description": "nginx, 3 replicas, half a core each"},
		"diagnose": {"name": "web"},
		"capacity": {},
	} {
		p, err := s.cs.GetPrompt(ctx, &sdk.GetPromptParams{Name: name, Arguments: args})
		if err != nil {
			t.Fatalf("prompt %s: %v", name, err)
		}
		text := p.Messages[0].Content.(*sdk.TextContent).Text
		want := map[string]string{"deploy": "plan_workload", "diagnose": `"name": "web"`, "capacity": "Node sim-0"}[name]
		if !strings.Contains(text, want) {
			t.Fatalf("prompt %s does not say %q: %s", name, want, text)
		}
	}
	if _, err := s.cs.GetPrompt(ctx, &sdk.GetPromptParams{Name: "diagnose", Arguments: map[string]string{}}); err == nil || !strings.Contains(err.Error(), "argument name") {
		t.Fatalf("diagnose without a name: %v", err)
	}
}
