package writes_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/apiserver/apiservertest"
	"skiff.dev/skiff/internal/writes"
)

// replies records the kind of every reply body.
type replies struct {
	next  http.RoundTripper
	mu    sync.Mutex
	kinds []string
}

func (r *replies) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err != nil || req.Method == http.MethodGet {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	var kind string
	if i := bytes.Index(body, []byte(`"kind":"`)); i >= 0 {
		kind, _, _ = strings.Cut(string(body[i+len(`"kind":"`):]), `"`)
	}
	r.mu.Lock()
	r.kinds = append(r.kinds, req.Method+" "+kind)
	r.mu.Unlock()
	return resp, nil
}

func (r *replies) last() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.kinds) == 0 {
		return ""
	}
	return r.kinds[len(r.kinds)-1]
}

// A create and a status write through MetadataReplies are answered with
// the object's metadata only: the object written takes the server's
// metadata and keeps its own fields; the server's refusals come back as
// the same API errors.
func TestMetadataRepliesWriteAndTakeBackMetadata(t *testing.T) {
	srv := apiservertest.Start(t)
	scheme := runtime.NewScheme()
	if err := skiffv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	hc, err := rest.HTTPClientFor(srv.Admin)
	if err != nil {
		t.Fatal(err)
	}
	seen := &replies{next: hc.Transport}
	hc.Transport = seen
	plain, err := client.New(srv.Admin, client.Options{Scheme: scheme, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	c := writes.MetadataReplies(plain, srv.Admin, hc)
	ctx := context.Background()

	inst := &skiffv1alpha1.Instance{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-1", Labels: map[string]string{"app": "web"}},
		Spec: skiffv1alpha1.InstanceSpec{InstanceTemplateSpec: skiffv1alpha1.InstanceTemplateSpec{Containers: []skiffv1alpha1.Container{{
			Name: "main", Image: "registry.local/web:1.0",
			Resources: skiffv1alpha1.ResourceRequirements{Requests: corev1.ResourceList{"cpu": resource.MustParse("100m")}},
		}}}},
	}
	if err := c.Create(ctx, inst); err != nil {
		t.Fatalf("create: %v", err)
	}
	if got := seen.last(); got != "POST PartialObjectMetadata" {
		t.Fatalf("the create's reply was %q, want POST PartialObjectMetadata", got)
	}
	var stored skiffv1alpha1.Instance
	if err := plain.Get(ctx, client.ObjectKeyFromObject(inst), &stored); err != nil {
		t.Fatal(err)
	}
	if inst.UID == "" || inst.UID != stored.UID || inst.ResourceVersion != stored.ResourceVersion ||
		!inst.CreationTimestamp.Equal(&stored.CreationTimestamp) || len(inst.ManagedFields) == 0 {
		t.Fatalf("after the create the object's metadata is %+v, the server's %+v", inst.ObjectMeta, stored.ObjectMeta)
	}
	if inst.Spec.Containers[0].Image != "registry.local/web:1.0" || inst.Labels["app"] != "web" {
		t.Fatalf("the create lost the object's fields: %+v", inst)
	}

	// A status write from the object as stored (an agent's, from its
	// cache): the create's object lacks what the server derived.
	inst = stored.DeepCopy()
	before := inst.ResourceVersion
	inst.Status.Phase, inst.Status.Message = skiffv1alpha1.InstanceRunning, "up"
	if err := c.Status().Update(ctx, inst); err != nil {
		t.Fatalf("status: %v", err)
	}
	if got := seen.last(); got != "PUT PartialObjectMetadata" {
		t.Fatalf("the status write's reply was %q, want PUT PartialObjectMetadata", got)
	}
	if err := plain.Get(ctx, client.ObjectKeyFromObject(inst), &stored); err != nil {
		t.Fatal(err)
	}
	if stored.Status.Phase != skiffv1alpha1.InstanceRunning || stored.Status.Message != "up" {
		t.Fatalf("stored status %+v, want Running, up", stored.Status)
	}
	if inst.ResourceVersion == before || inst.ResourceVersion != stored.ResourceVersion {
		t.Fatalf("after the status write the object is at %s (was %s), the server's at %s", inst.ResourceVersion, before, stored.ResourceVersion)
	}
	if inst.Status.Phase != skiffv1alpha1.InstanceRunning {
		t.Fatalf("the status write lost the status sent: %+v", inst.Status)
	}

	again := inst.DeepCopy()
	again.ResourceVersion = ""
	if err := c.Create(ctx, again); !apierrors.IsAlreadyExists(err) {
		t.Fatalf("second create: %v, want AlreadyExists", err)
	}
	stale := inst.DeepCopy()
	stale.ResourceVersion = before
	if err := c.Status().Update(ctx, stale); !apierrors.IsConflict(err) {
		t.Fatalf("status write from a replaced version: %v, want Conflict", err)
	}
	missing := inst.DeepCopy()
	missing.Name, missing.ResourceVersion = "absent", ""
	if err := c.Status().Update(ctx, missing); !apierrors.IsNotFound(err) {
		t.Fatalf("status write of a missing Instance: %v, want NotFound", err)
	}
}
