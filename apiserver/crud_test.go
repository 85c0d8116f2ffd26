package apiserver

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apiserver/pkg/features"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

func newWorkload(name string, replicas int32) *skiffv1alpha1.Workload {
	return &skiffv1alpha1.Workload{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: skiffv1alpha1.WorkloadSpec{
			Replicas: ptr.To(replicas),
			Template: skiffv1alpha1.InstanceTemplate{
				Metadata: skiffv1alpha1.TemplateMetadata{Labels: map[string]string{"app": name}},
				Spec: skiffv1alpha1.InstanceTemplateSpec{Containers: []skiffv1alpha1.Container{
					{Name: "main", Image: "busybox:1.36"},
				}},
			},
		},
	}
}

func newInstance(name string) *skiffv1alpha1.Instance {
	return &skiffv1alpha1.Instance{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": name}},
		Spec: skiffv1alpha1.InstanceSpec{InstanceTemplateSpec: skiffv1alpha1.InstanceTemplateSpec{
			Containers: []skiffv1alpha1.Container{{Name: "main", Image: "busybox:1.36"}},
		}},
	}
}

func TestControllerRuntimeCRUD(t *testing.T) {
	ts := startTestServer(t, t.TempDir())
	c := ts.client
	ctx := context.Background()

	w := newWorkload("web", 2)
	if err := c.Create(ctx, w); err != nil {
		t.Fatalf("create: %v", err)
	}
	if w.Generation != 1 || w.Spec.Strategy.Type != skiffv1alpha1.RollingUpdateStrategy || w.Spec.Selector == nil {
		t.Fatalf("create did not default: generation %d strategy %q selector %v", w.Generation, w.Spec.Strategy.Type, w.Spec.Selector)
	}

	var got skiffv1alpha1.Workload
	if err := c.Get(ctx, client.ObjectKeyFromObject(w), &got); err != nil {
		t.Fatalf("get: %v", err)
	}
	var list skiffv1alpha1.WorkloadList
	if err := c.List(ctx, &list, client.InNamespace("default")); err != nil || len(list.Items) != 1 {
		t.Fatalf("list: %v, %d items", err, len(list.Items))
	}

	got.Spec.Replicas = ptr.To[int32](3)
	got.Status.Replicas = 99 // ignored by the main resource
	if err := c.Update(ctx, &got); err != nil {
		t.Fatalf("update: %v", err)
	}
	if got.Generation != 2 || got.Status.Replicas != 0 {
		t.Fatalf("update: generation %d (want 2), status.replicas %d (want 0: status is ignored)", got.Generation, got.Status.Replicas)
	}

	patch := client.MergeFrom(got.DeepCopy())
	got.Labels = map[string]string{"tier": "front"}
	if err := c.Patch(ctx, &got, patch); err != nil {
		t.Fatalf("patch: %v", err)
	}
	if got.Labels["tier"] != "front" || got.Generation != 2 {
		t.Fatalf("patch: labels %v generation %d", got.Labels, got.Generation)
	}

	got.Status.Replicas, got.Status.ReadyReplicas = 3, 2
	got.Spec.Replicas = ptr.To[int32](7) // ignored by the status subresource
	if err := c.Status().Update(ctx, &got); err != nil {
		t.Fatalf("status update: %v", err)
	}
	if got.Status.ReadyReplicas != 2 || *got.Spec.Replicas != 3 {
		t.Fatalf("status update: ready %d spec.replicas %d", got.Status.ReadyReplicas, *got.Spec.Replicas)
	}

	if err := c.Delete(ctx, &got); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(w), &got); !apierrors.IsNotFound(err) {
		t.Fatalf("get after delete: %v, want NotFound", err)
	}
}

func TestOptimisticConcurrency(t *testing.T) {
	ts := startTestServer(t, t.TempDir())
	ctx := context.Background()
	w := newWorkload("occ", 1)
	if err := ts.client.Create(ctx, w); err != nil {
		t.Fatal(err)
	}
	stale := w.DeepCopy()
	w.Spec.Replicas = ptr.To[int32](2)
	if err := ts.client.Update(ctx, w); err != nil {
		t.Fatal(err)
	}
	stale.Spec.Replicas = ptr.To[int32](5)
	err := ts.client.Update(ctx, stale)
	if !apierrors.IsConflict(err) {
		t.Fatalf("update with stale resourceVersion: %v, want 409 Conflict", err)
	}
}

func TestInformerSeesAddUpdateDelete(t *testing.T) {
	ts := startTestServer(t, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	informers, err := cache.New(ts.cfg, cache.Options{Scheme: ts.scheme})
	if err != nil {
		t.Fatal(err)
	}
	inf, err := informers.GetInformer(ctx, &skiffv1alpha1.Instance{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	record := func(ev string) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, ev)
	}
	_, err = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { record("add") },
		UpdateFunc: func(old, obj interface{}) { record("update") },
		DeleteFunc: func(obj interface{}) { record("delete") },
	})
	if err != nil {
		t.Fatal(err)
	}
	go informers.Start(ctx)
	if !informers.WaitForCacheSync(ctx) {
		t.Fatal("cache did not sync")
	}
	has := func(ev string) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, s := range seen {
				if s == ev {
					return true
				}
			}
			return false
		}
	}
	inst := newInstance("watched")
	if err := ts.client.Create(ctx, inst); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "add event", has("add"))
	inst.Labels["x"] = "y"
	if err := ts.client.Update(ctx, inst); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "update event", has("update"))
	if err := ts.client.Delete(ctx, inst); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "delete event", has("delete"))
}

func TestBindingSetsNodeNameOnce(t *testing.T) {
	ts := startTestServer(t, t.TempDir())
	ctx := context.Background()
	inst := newInstance("bind-me")
	if err := ts.client.Create(ctx, inst); err != nil {
		t.Fatal(err)
	}
	if inst.Status.Phase != skiffv1alpha1.InstancePending || inst.Status.QOSClass != skiffv1alpha1.QOSBestEffort {
		t.Fatalf("create status: phase %q qos %q", inst.Status.Phase, inst.Status.QOSClass)
	}
	bind := func(node string) error {
		return ts.client.SubResource("binding").Create(ctx, inst, &skiffv1alpha1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: inst.Name}, NodeName: node,
		})
	}
	if err := bind("node-a"); err != nil {
		t.Fatalf("first bind: %v", err)
	}
	if err := bind("node-b"); !apierrors.IsConflict(err) {
		t.Fatalf("second bind: %v, want 409 Conflict", err)
	}
	var got skiffv1alpha1.Instance
	if err := ts.client.Get(ctx, client.ObjectKeyFromObject(inst), &got); err != nil {
		t.Fatal(err)
	}
	if got.Spec.NodeName != "node-a" || !meta.IsStatusConditionTrue(got.Status.Conditions, skiffv1alpha1.InstanceScheduled) {
		t.Fatalf("after bind: nodeName %q conditions %v", got.Spec.NodeName, got.Status.Conditions)
	}
	// The bind holds the Instance for the node's agent: no write of its
	// own is needed before the first start.
	if !slices.Equal(got.Finalizers, []string{skiffv1alpha1.AgentFinalizer}) {
		t.Fatalf("after bind: finalizers %v, want [%s]", got.Finalizers, skiffv1alpha1.AgentFinalizer)
	}
	got.Spec.NodeName = "node-c"
	if err := ts.client.Update(ctx, &got); !apierrors.IsInvalid(err) {
		t.Fatalf("changing a set nodeName: %v, want Invalid", err)
	}

	var onNode skiffv1alpha1.InstanceList
	err := ts.client.List(ctx, &onNode, client.InNamespace("default"),
		client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("spec.nodeName", "node-a")})
	if err != nil || len(onNode.Items) != 1 {
		t.Fatalf("field selector spec.nodeName: %v, %d items", err, len(onNode.Items))
	}
}

func TestScaleSubresource(t *testing.T) {
	ts := startTestServer(t, t.TempDir())
	ctx := context.Background()
	w := newWorkload("scaled", 1)
	if err := ts.client.Create(ctx, w); err != nil {
		t.Fatal(err)
	}
	scale := &autoscalingv1.Scale{}
	if err := ts.client.SubResource("scale").Get(ctx, w, scale); err != nil {
		t.Fatalf("get scale: %v", err)
	}
	if scale.Spec.Replicas != 1 || scale.Status.Selector != "app=scaled" {
		t.Fatalf("scale: %+v", scale)
	}
	patch := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"replicas":6}}`))
	if err := ts.client.SubResource("scale").Patch(ctx, w, patch, client.WithSubResourceBody(scale)); err != nil {
		t.Fatalf("patch scale: %v", err)
	}
	if err := ts.client.Get(ctx, client.ObjectKeyFromObject(w), w); err != nil || *w.Spec.Replicas != 6 {
		t.Fatalf("replicas after scale: %v %v", err, w.Spec.Replicas)
	}
	bad := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"replicas":-1}}`))
	if err := ts.client.SubResource("scale").Patch(ctx, w, bad, client.WithSubResourceBody(scale)); !apierrors.IsInvalid(err) {
		t.Fatalf("negative scale: %v, want Invalid", err)
	}
}

func TestDryRunStoresNothing(t *testing.T) {
	ts := startTestServer(t, t.TempDir())
	ctx := context.Background()
	w := newWorkload("dry", 1)
	if err := ts.client.Create(ctx, w, client.DryRunAll); err != nil {
		t.Fatalf("dry-run create: %v", err)
	}
	err := ts.client.Get(ctx, client.ObjectKeyFromObject(w), &skiffv1alpha1.Workload{})
	if !apierrors.IsNotFound(err) {
		t.Fatalf("after dry run: %v, want NotFound", err)
	}
}

func TestNamespaces(t *testing.T) {
	ts := startTestServer(t, t.TempDir())
	ctx := context.Background()
	for _, name := range []string{DefaultNamespace, SystemNamespace} {
		var ns corev1.Namespace
		if err := ts.client.Get(ctx, client.ObjectKey{Name: name}, &ns); err != nil {
			t.Fatalf("namespace %q: %v", name, err)
		}
	}
	inst := newInstance("orphan")
	inst.Namespace = "missing"
	if err := ts.client.Create(ctx, inst); !apierrors.IsNotFound(err) {
		t.Fatalf("create in a missing namespace: %v, want NotFound", err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}
	if err := ts.client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	inst.Namespace = "team"
	if err := ts.client.Create(ctx, inst); err != nil {
		t.Fatal(err)
	}
	if err := ts.client.Delete(ctx, ns); !apierrors.IsConflict(err) {
		t.Fatalf("delete non-empty namespace: %v, want Conflict", err)
	}
	if err := ts.client.Delete(ctx, inst); err != nil {
		t.Fatal(err)
	}
	if err := ts.client.Delete(ctx, ns); err != nil {
		t.Fatalf("delete empty namespace: %v", err)
	}
	def := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: DefaultNamespace}}
	if err := ts.client.Delete(ctx, def); !apierrors.IsForbidden(err) {
		t.Fatalf("delete default: %v, want Forbidden", err)
	}
}

// A paginated list sees the cluster as of its first page: objects created
// after it are not in the later pages, which the server reads from etcd at
// the first page's revision (the watch cache keeps no snapshots for them).
func TestPaginatedListIsOneSnapshot(t *testing.T) {
	ts := startTestServer(t, t.TempDir())
	ctx := context.Background()
	if utilfeature.DefaultFeatureGate.Enabled(features.ListFromCacheSnapshot) {
		t.Fatal("the watch cache keeps snapshots: ListFromCacheSnapshot is on")
	}
	var want []string
	for i := range 25 {
		w := newWorkload(fmt.Sprintf("page-%02d", i), 1)
		if err := ts.client.Create(ctx, w); err != nil {
			t.Fatal(err)
		}
		want = append(want, w.Name)
	}
	var got []string
	opts := []client.ListOption{client.InNamespace("default"), client.Limit(10)}
	for page := 0; ; page++ {
		var list skiffv1alpha1.WorkloadList
		if err := ts.client.List(ctx, &list, opts...); err != nil {
			t.Fatalf("page %d: %v", page, err)
		}
		for _, w := range list.Items {
			got = append(got, w.Name)
		}
		if page == 0 {
			// Created after the first page: not in this list.
			if err := ts.client.Create(ctx, newWorkload("page-late", 1)); err != nil {
				t.Fatal(err)
			}
		}
		if list.Continue == "" {
			break
		}
		opts = []client.ListOption{client.InNamespace("default"), client.Limit(10), client.Continue(list.Continue)}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paginated list: %v, want %v", got, want)
	}
}
