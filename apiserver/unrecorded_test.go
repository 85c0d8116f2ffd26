package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// TestUnrecordedCreatesSkipOnlyWhatIsDropped: a controller's Instance and
// a Binding are created without working out the managed-fields record
// nothing keeps; an Instance without a controller, and one whose client
// sets managed fields itself, get the record as before; the creates are
// still counted in apiserver_request_total.
func TestUnrecordedCreatesSkipOnlyWhatIsDropped(t *testing.T) {
	ts := startTestServer(t, t.TempDir())
	c := ts.client
	ctx := context.Background()
	u := ts.srv.unrecorded.Load()
	if u == nil {
		t.Fatal("the unrecorded creates are not installed")
	}
	skipped := u.skipped.Load()
	posts := func() float64 {
		return counterSum(t, legacyregistry.DefaultGatherer, "apiserver_request_total",
			map[string]string{"group": "skiff.dev", "resource": "instances", "verb": "POST", "code": "201"})
	}
	posted := posts()
	owner := metav1.OwnerReference{APIVersion: "skiff.dev/v1alpha1", Kind: "Workload", Name: "web", UID: "0a1b2c3d", Controller: ptr.To(true)}

	made := newInstance("made")
	made.OwnerReferences = []metav1.OwnerReference{owner}
	if err := c.Create(ctx, made, client.FieldOwner("skiff-controllers")); err != nil {
		t.Fatalf("create: %v", err)
	}
	if len(made.ManagedFields) != 0 || made.Status.Phase != skiffv1alpha1.InstancePending || made.UID == "" {
		t.Fatalf("a controller's Instance was created with managed fields %v, phase %q, uid %q", made.ManagedFields, made.Status.Phase, made.UID)
	}
	if got := u.skipped.Load() - skipped; got != 1 {
		t.Fatalf("creating a controller's Instance emptied %d objects for the field manager; want 1 (the Instance)", got)
	}

	b := &skiffv1alpha1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "made", Namespace: "default", UID: made.UID}, NodeName: "node-a"}
	if err := c.SubResource("binding").Create(ctx, made, b); err != nil {
		t.Fatalf("bind: %v", err)
	}
	if got := u.skipped.Load() - skipped; got != 3 {
		t.Fatalf("after the bind, %d objects were emptied for the field manager; want 3 (and the Binding, old and new)", got)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(made), made); err != nil {
		t.Fatal(err)
	}
	if made.Spec.NodeName != "node-a" || len(made.ManagedFields) != 0 {
		t.Fatalf("after the bind the Instance is on %q with managed fields %v", made.Spec.NodeName, made.ManagedFields)
	}

	plain := newInstance("plain")
	if err := c.Create(ctx, plain, client.FieldOwner("person")); err != nil {
		t.Fatalf("create: %v", err)
	}
	if len(plain.ManagedFields) != 1 || plain.ManagedFields[0].Manager != "person" || !strings.Contains(string(plain.ManagedFields[0].FieldsV1.Raw), `"f:containers"`) {
		t.Fatalf("an Instance without a controller has managed fields %v; want person's record of its fields", plain.ManagedFields)
	}

	// A client that sets managed fields itself goes the library's way: an
	// apply entry among them (for a field the creator does not set, which
	// stays the applier's) keeps the record, the creator's included.
	kept := newInstance("kept")
	kept.OwnerReferences = []metav1.OwnerReference{owner}
	kept.ManagedFields = []metav1.ManagedFieldsEntry{{
		Manager: "applier", Operation: metav1.ManagedFieldsOperationApply, APIVersion: "skiff.dev/v1alpha1",
		FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:annotations":{"f:note":{}}}}`)},
	}}
	if err := c.Create(ctx, kept, client.FieldOwner("copier")); err != nil {
		t.Fatalf("create: %v", err)
	}
	managers := map[string]metav1.ManagedFieldsOperationType{}
	for _, e := range kept.ManagedFields {
		managers[e.Manager] = e.Operation
	}
	if managers["applier"] != metav1.ManagedFieldsOperationApply || managers["copier"] != metav1.ManagedFieldsOperationUpdate {
		t.Fatalf("an Instance created with an apply entry has managers %v; want applier's Apply and copier's Update (skipped %d)", managers, u.skipped.Load()-skipped)
	}
	if got := u.skipped.Load() - skipped; got != 3 {
		t.Fatalf("%d objects were emptied for the field manager; want still 3", got)
	}
	if got := posts() - posted; got < 3 {
		t.Fatalf("apiserver_request_total counted %v Instance creates; want at least 3", got)
	}
}

// countingAdmission admits everything and counts how often it is asked
// whether it handles a request.
type countingAdmission struct{ asked atomic.Int64 }

func (c *countingAdmission) Handles(admission.Operation) bool { c.asked.Add(1); return true }

func (c *countingAdmission) Validate(context.Context, admission.Attributes, admission.ObjectInterfaces) error {
	return nil
}

// TestUnrecordedCreatesAdmitEachRequestOnce: the library's create handler
// wraps the admission it is given in place, so a route must make one
// per request, as the library's do: the hundredth create is admitted
// through as few layers as the first.
func TestUnrecordedCreatesAdmitEachRequestOnce(t *testing.T) {
	ts := startTestServer(t, t.TempDir())
	d := ts.srv.unrecorded.Load().deps
	adm := &countingAdmission{}
	d.admit = adm
	u, err := newUnrecordedCreates(d)
	if err != nil {
		t.Fatal(err)
	}
	owner := metav1.OwnerReference{APIVersion: "skiff.dev/v1alpha1", Kind: "Workload", Name: "web", UID: "0a1b2c3d", Controller: ptr.To(true)}
	create := func(i int) int64 {
		t.Helper()
		inst := newInstance(fmt.Sprintf("direct-%d", i))
		inst.OwnerReferences = []metav1.OwnerReference{owner}
		body, err := json.Marshal(inst)
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodPost, "/apis/skiff.dev/v1alpha1/namespaces/default/instances", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		ctx := request.WithUser(req.Context(), &user.DefaultInfo{Name: "admin", Groups: []string{user.SystemPrivilegedGroup}})
		ctx = request.WithNamespace(ctx, "default")
		ctx = request.WithRequestInfo(ctx, &request.RequestInfo{IsResourceRequest: true, Verb: "create", APIGroup: "skiff.dev",
			APIVersion: "v1alpha1", Namespace: "default", Resource: "instances"})
		before := adm.asked.Load()
		rec := httptest.NewRecorder()
		u.instances.ServeHTTP(rec, req.WithContext(ctx))
		if rec.Code != http.StatusCreated {
			t.Fatalf("create %d: %d %s", i, rec.Code, rec.Body)
		}
		return adm.asked.Load() - before
	}
	first := create(0)
	for i := 1; i < 100; i++ {
		create(i)
	}
	if last := create(100); last != first {
		t.Fatalf("the admission was asked %d times for the 101st create, %d for the first: the route keeps wrapping it", last, first)
	}
	if u.skipped.Load() != 101 {
		t.Fatalf("%d Instances were emptied for the field manager; want 101", u.skipped.Load())
	}
}
