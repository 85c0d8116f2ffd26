package mcp_test

import (
	"context"
	"strings"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// TestDeleteAsksTheUser: a client that can elicit is asked, in each
// protocol version's way (an elicitation request before 2026-07-28, an
// input request on the call since), and the answer decides.
func TestDeleteAsksTheUser(t *testing.T) {
	c := startCluster(t, 0, false)
	ctx := context.Background()
	for _, protocol := range sdk.SupportedProtocolVersions() {
		t.Run(protocol, func(t *testing.T) {
			var asked []string
			answer := "decline"
			s := c.connect(t, sessionOpts{protocol: protocol, client: &sdk.ClientOptions{
				ElicitationHandler: func(_ context.Context, req *sdk.ElicitRequest) (*sdk.ElicitResult, error) {
					asked = append(asked, req.Params.Message)
					return &sdk.ElicitResult{Action: answer}, nil
				},
			}})
			name := "del-" + protocol[:4] + protocol[5:7] + protocol[8:]
			s.must("create_workload", map[string]any{"name": name, "image": "busybox"})
			_, err := s.call("delete_workload", map[string]any{"name": name})
			wantError(t, err, "not confirmed", "decline")
			// A model cannot skip a user who can be asked.
			_, err = s.call("delete_workload", map[string]any{"name": name, "confirm": true})
			wantError(t, err, "not confirmed", "decline")
			asked = asked[1:]
			if len(asked) != 1 {
				t.Fatalf("asked %d times: %q", len(asked), asked)
			}
			if err := c.admin.Get(ctx, client.ObjectKey{Namespace: "default", Name: name}, &skiffv1alpha1.Workload{}); err != nil {
				t.Fatalf("a declined delete deleted: %v", err)
			}
			answer = "accept"
			s.must("delete_workload", map[string]any{"name": name})
			err = c.admin.Get(ctx, client.ObjectKey{Namespace: "default", Name: name}, &skiffv1alpha1.Workload{})
			if !apierrors.IsNotFound(err) {
				var w skiffv1alpha1.Workload
				_ = c.admin.Get(ctx, client.ObjectKey{Namespace: "default", Name: name}, &w)
				if w.DeletionTimestamp == nil {
					t.Fatalf("an accepted delete left the Workload: %v", err)
				}
			}
		})
	}
}

// TestErrorsNameTheField: the API server's message with its field path,
// the argument named for bad arguments, and nothing half written.
func TestErrorsNameTheField(t *testing.T) {
	c := startCluster(t, 0, false)
	s := c.connect(t, sessionOpts{})
	ctx := context.Background()
	s.must("create_workload", map[string]any{"name": "web", "image": "busybox", "replicas": 1})

	_, err := s.call("scale_workload", map[string]any{"name": "web", "replicas": -1})
	wantError(t, err, "spec.replicas: Invalid value: -1")
	_, err = s.call("create_workload", map[string]any{"name": "Bad_Name", "image": "busybox"})
	wantError(t, err, "metadata.name", "Invalid value")
	_, err = s.call("create_workload", map[string]any{"name": "web2", "image": "busybox", "cpu_cores": -1})
	wantError(t, err, "argument cpu_cores")
	_, err = s.call("get_workload", map[string]any{"name": "nope"})
	wantError(t, err, `"nope" not found`)
	_, err = s.call("list_instances", map[string]any{"phase": "Sleeping"})
	wantError(t, err, "argument phase")
	_, err = s.call("list_workloads", map[string]any{"limit": 501})
	wantError(t, err, "argument limit")
	_, err = s.call("list_workloads", map[string]any{"continue": "garbage!"})
	wantError(t, err, "argument continue")
	_, err = s.call("get_logs", map[string]any{"instance": "x", "grep": "("})
	wantError(t, err, "argument grep")
	_, err = s.call("list_workloads", map[string]any{"label_selector": "a in (b"})
	wantError(t, err, "argument label_selector")
	_, err = s.call("plan_workload", map[string]any{"name": "web", "manifest": "x"})
	wantError(t, err, "exactly one of manifest, workload or name")
	_, err = s.call("list_workloads", map[string]any{"bogus": 1})
	wantError(t, err, "bogus")

	// A manifest whose second document is invalid writes nothing.
	manifest := `apiVersion: skiff.dev/v1alpha1
kind: Workload
metadata: {name: first}
spec:
  template:
    metadata: {labels: {app: first}}
    spec: {containers: [{name: c, image: busybox}]}
---
apiVersion: skiff.dev/v1alpha1
kind: Workload
metadata: {name: second}
spec:
  replicas: -3
  template:
    metadata: {labels: {app: second}}
    spec: {containers: [{name: c, image: busybox}]}
`
	_, err = s.call("apply_manifest", map[string]any{"manifest": manifest})
	wantError(t, err, "document 2", "spec.replicas: Invalid value: -3", "nothing was applied")
	if err := c.admin.Get(ctx, client.ObjectKey{Namespace: "default", Name: "first"}, &skiffv1alpha1.Workload{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the failed manifest's first document was written: %v", err)
	}
	// Also when the invalid document is in a namespace the manifest makes.
	_, err = s.call("apply_manifest", map[string]any{"manifest": "apiVersion: v1\nkind: Namespace\nmetadata: {name: fresh}\n---\n" +
		strings.Replace(strings.SplitN(manifest, "---\n", 2)[1], "metadata: {name: second}", "metadata: {name: second, namespace: fresh}", 1)})
	wantError(t, err, "document 2", "spec.replicas: Invalid value: -3", "nothing was applied")
	if err := c.admin.Get(ctx, client.ObjectKey{Name: "fresh"}, &corev1.Namespace{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the failed manifest's namespace was made: %v", err)
	}
}

// TestApplyManifest: a dry run says what would change and writes
// nothing; the apply writes every document with the bridge's field manager.
func TestApplyManifest(t *testing.T) {
	c := startCluster(t, 0, false)
	s := c.connect(t, sessionOpts{})
	ctx := context.Background()
	s.must("create_workload", map[string]any{"name": "web", "image": "busybox", "replicas": 1})
	manifest := `apiVersion: skiff.dev/v1alpha1
kind: Workload
metadata: {name: web}
spec:
  replicas: 4
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: main, image: busybox}]}
---
apiVersion: v1
kind: Namespace
metadata: {name: team-a}
---
apiVersion: skiff.dev/v1alpha1
kind: Workload
metadata: {name: api, namespace: team-a}
spec:
  template:
    metadata: {labels: {app: api}}
    spec: {containers: [{name: main, image: busybox}]}
`
	out := s.must("apply_manifest", map[string]any{"manifest": manifest, "dry_run": true})
	docs := out["documents"].([]any)
	d0, d1 := docs[0].(map[string]any), docs[1].(map[string]any)
	if d0["action"] != "would be configured" || d0["changes"].([]any)[0] != "spec.replicas" || d1["action"] != "would be created" {
		t.Fatalf("dry run: %v", docs)
	}
	var w skiffv1alpha1.Workload
	if err := c.admin.Get(ctx, client.ObjectKey{Namespace: "default", Name: "web"}, &w); err != nil || *w.Spec.Replicas != 1 {
		t.Fatalf("the dry run changed web: %v %v", w.Spec.Replicas, err)
	}
	s.must("apply_manifest", map[string]any{"manifest": manifest})
	if err := c.admin.Get(ctx, client.ObjectKey{Namespace: "default", Name: "web"}, &w); err != nil || *w.Spec.Replicas != 4 {
		t.Fatalf("after apply web has %v replicas (%v)", w.Spec.Replicas, err)
	}
	if err := c.admin.Get(ctx, client.ObjectKey{Namespace: "team-a", Name: "api"}, &w); err != nil {
		t.Fatal(err)
	}
	out = s.must("apply_manifest", map[string]any{"manifest": manifest})
	if out["documents"].([]any)[0].(map[string]any)["action"] != "unchanged" {
		t.Fatalf("applying again: %v", out["documents"])
	}
}
