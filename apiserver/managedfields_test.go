package apiserver

import (
	"context"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// TestStatusWritesOwnOnlyWhatTheyChange: a status write records
// ownership of the status fields it set and of nothing the status
// endpoint puts back (spec, labels, annotations, finalizers, owners),
// and a main-endpoint write owns no status.
func TestStatusWritesOwnOnlyWhatTheyChange(t *testing.T) {
	ts := startTestServer(t, t.TempDir())
	c := ts.client
	ctx := context.Background()

	w := newWorkload("owned", 2)
	w.Labels = map[string]string{"team": "a"}
	w.Status.Replicas = 42 // dropped by the main endpoint
	if err := c.Create(ctx, w, client.FieldOwner("admin")); err != nil {
		t.Fatalf("create: %v", err)
	}

	w.Status.ReadyReplicas = 1
	w.Labels = map[string]string{"team": "b", "sneaky": "yes"}
	w.Annotations = map[string]string{"note": "x"}
	w.Finalizers = []string{"skiff.dev/test"}
	w.Spec.Replicas = new(int32)
	if err := c.Status().Update(ctx, w, client.FieldOwner("ctrl")); err != nil {
		t.Fatalf("status update: %v", err)
	}
	if w.Labels["team"] != "a" || len(w.Annotations) != 0 || len(w.Finalizers) != 0 || *w.Spec.Replicas != 2 {
		t.Fatalf("status write changed labels %v annotations %v finalizers %v replicas %d", w.Labels, w.Annotations, w.Finalizers, *w.Spec.Replicas)
	}

	var got skiffv1alpha1.Workload
	if err := c.Get(ctx, client.ObjectKeyFromObject(w), &got); err != nil {
		t.Fatal(err)
	}
	owned := map[string]string{}
	for _, e := range got.ManagedFields {
		owned[e.Manager+"/"+e.Subresource] = string(e.FieldsV1.Raw)
	}
	ctrl, ok := owned["ctrl/status"]
	if !ok {
		t.Fatalf("no managed-fields entry for the status writer: %v", owned)
	}
	if !strings.Contains(ctrl, `"f:readyReplicas"`) {
		t.Errorf("the status writer does not own status.readyReplicas: %s", ctrl)
	}
	for _, f := range []string{`"f:spec"`, `"f:metadata"`, `"f:labels"`, `"f:annotations"`, `"f:finalizers"`} {
		if strings.Contains(ctrl, f) {
			t.Errorf("the status writer owns %s, which it did not change: %s", f, ctrl)
		}
	}
	if admin := owned["admin/"]; strings.Contains(admin, `"f:status"`) {
		t.Errorf("the main-endpoint writer owns status: %s", admin)
	}
}
