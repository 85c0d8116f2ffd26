package apiserver

import (
	"context"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
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

// TestControllerMadeInstancesCarryNoManagedFields: an Instance made by a
// controller (with a controller ownerReference) is stored without managed
// fields and its status writes add none; the first server-side apply
// starts the record, with what was there owned by "before-first-apply".
// An Instance made without a controller, or made by apply, keeps them.
func TestControllerMadeInstancesCarryNoManagedFields(t *testing.T) {
	ts := startTestServer(t, t.TempDir())
	c := ts.client
	ctx := context.Background()
	managers := func(name string) map[string]metav1.ManagedFieldsOperationType {
		t.Helper()
		var got skiffv1alpha1.Instance
		if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: name}, &got); err != nil {
			t.Fatal(err)
		}
		out := map[string]metav1.ManagedFieldsOperationType{}
		for _, e := range got.ManagedFields {
			out[e.Manager+"/"+e.Subresource] = e.Operation
		}
		return out
	}
	owner := metav1.OwnerReference{APIVersion: "skiff.dev/v1alpha1", Kind: "Workload", Name: "web", UID: "0a1b2c3d", Controller: ptr.To(true)}

	made := newInstance("made")
	made.OwnerReferences = []metav1.OwnerReference{owner}
	if err := c.Create(ctx, made, client.FieldOwner("skiff-controllers")); err != nil {
		t.Fatalf("create: %v", err)
	}
	if len(made.ManagedFields) != 0 {
		t.Fatalf("the create's answer has managed fields %v", made.ManagedFields)
	}
	made.Status.Phase = skiffv1alpha1.InstanceRunning
	if err := c.Status().Update(ctx, made, client.FieldOwner("skiff-agent")); err != nil {
		t.Fatalf("status update: %v", err)
	}
	if got := managers("made"); len(got) != 0 {
		t.Fatalf("a controller's Instance has managed fields %v after its status write", got)
	}

	apply := &skiffv1alpha1.Instance{
		TypeMeta:   metav1.TypeMeta{APIVersion: "skiff.dev/v1alpha1", Kind: "Instance"},
		ObjectMeta: metav1.ObjectMeta{Name: "made", Namespace: "default", Labels: map[string]string{"team": "a"}},
	}
	if err := c.Patch(ctx, apply, client.Apply, client.FieldOwner("person")); err != nil {
		t.Fatalf("server-side apply: %v", err)
	}
	if got := managers("made"); got["person/"] != metav1.ManagedFieldsOperationApply || got["before-first-apply/"] != metav1.ManagedFieldsOperationUpdate {
		t.Fatalf("after the first apply, managers are %v; want person's Apply and before-first-apply's Update", got)
	}
	// What was there before the first apply is before-first-apply's:
	// changing it conflicts, unless forced.
	change := func() *skiffv1alpha1.Instance {
		return &skiffv1alpha1.Instance{
			TypeMeta:   metav1.TypeMeta{APIVersion: "skiff.dev/v1alpha1", Kind: "Instance"},
			ObjectMeta: metav1.ObjectMeta{Name: "made", Namespace: "default", Labels: map[string]string{"app": "other"}},
		}
	}
	if err := c.Patch(ctx, change(), client.Apply, client.FieldOwner("someone")); !apierrors.IsConflict(err) || !strings.Contains(err.Error(), "before-first-apply") {
		t.Fatalf("applying a change to a field set before the first apply: %v; want a conflict with before-first-apply", err)
	}
	if err := c.Patch(ctx, change(), client.Apply, client.FieldOwner("someone"), client.ForceOwnership); err != nil {
		t.Fatalf("forced apply: %v", err)
	}

	plain := newInstance("plain")
	if err := c.Create(ctx, plain, client.FieldOwner("person")); err != nil {
		t.Fatalf("create: %v", err)
	}
	if got := managers("plain"); got["person/"] != metav1.ManagedFieldsOperationUpdate {
		t.Fatalf("an Instance without a controller has managers %v; want person's Update", got)
	}

	applied := newInstance("applied")
	applied.TypeMeta = metav1.TypeMeta{APIVersion: "skiff.dev/v1alpha1", Kind: "Instance"}
	applied.OwnerReferences = []metav1.OwnerReference{owner}
	if err := c.Patch(ctx, applied, client.Apply, client.FieldOwner("person")); err != nil {
		t.Fatalf("server-side apply: %v", err)
	}
	if got := managers("applied"); got["person/"] != metav1.ManagedFieldsOperationApply {
		t.Fatalf("an Instance made by apply has managers %v; want person's Apply", got)
	}
}
