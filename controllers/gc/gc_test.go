package gc

import (
	"context"
	"slices"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/apiserver/apiservertest"
)

// hold is a finalizer the tests put on Instances to keep them around while
// they are being deleted, as a node agent's would.
const hold = "test.skiff.dev/hold"

// TestCollector runs the collector against a real apiserver: the three
// propagation policies, dangling owners, and shared ownership.
func TestCollector(t *testing.T) {
	s := apiservertest.Start(t)
	scheme := apiservertest.Scheme(t)
	admin, err := client.New(s.Admin, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	e := env{t: t, ctx: ctx, c: admin}

	// The apiserver's half: asked for Orphan or Foreground, it leaves the
	// object in place with the finalizer for the collector, which is not
	// running yet.
	early := map[string]metav1.DeletionPropagation{
		"early-orphan": metav1.DeletePropagationOrphan, "early-fg": metav1.DeletePropagationForeground,
	}
	want := map[metav1.DeletionPropagation]string{
		metav1.DeletePropagationOrphan: metav1.FinalizerOrphanDependents, metav1.DeletePropagationForeground: metav1.FinalizerDeleteDependents,
	}
	for name, policy := range early {
		w := e.workload(name)
		e.delete(w, policy)
		var got skiffv1alpha1.Workload
		e.get(w.Name, &got)
		if got.DeletionTimestamp == nil || !slices.Contains(got.Finalizers, want[policy]) {
			t.Fatalf("workload deleted with %s: deletionTimestamp %v, finalizers %v: want the %q finalizer",
				policy, got.DeletionTimestamp, got.Finalizers, want[policy])
		}
	}

	mgr := s.Manager(t, scheme)
	gc := &Collector{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Kinds: DefaultKinds()}
	if err := gc.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	apiservertest.Run(t, ctx, mgr.Start)

	// Level-triggered: finalizers set before the collector started are
	// finished when it does.
	for name := range early {
		e.eventually(name+" finalized", func() bool { return e.gone(name, &skiffv1alpha1.Workload{}) })
	}

	t.Run("background", func(t *testing.T) {
		e := e.with(t)
		w := e.workload("bg")
		e.instance("bg-1", nil, owner(w, true))
		e.instance("bg-2", nil, owner(w, false))
		e.instance("bg-free", nil)
		e.delete(w, metav1.DeletePropagationBackground)
		e.eventually("the owned instances deleted", func() bool {
			return e.gone("bg-1", &skiffv1alpha1.Instance{}) && e.gone("bg-2", &skiffv1alpha1.Instance{})
		})
		e.get("bg-free", &skiffv1alpha1.Instance{})
	})

	t.Run("foreground", func(t *testing.T) {
		e := e.with(t)
		w := e.workload("fg")
		e.instance("fg-1", []string{hold}, owner(w, true))
		e.instance("fg-2", []string{hold}, owner(w, true))
		e.instance("fg-3", nil, owner(w, false)) // deleted too, but does not hold the owner
		e.delete(w, metav1.DeletePropagationForeground)
		// The collector deleted the held ones (in the foreground, and
		// finished that: they have no dependents) and the free one.
		e.eventually("the owned instances deleting, held only by the test", func() bool {
			return e.heldOnly("fg-1") && e.heldOnly("fg-2") && e.gone("fg-3", &skiffv1alpha1.Instance{})
		})
		e.waiting(w.Name)
		e.release("fg-1")
		e.eventually("fg-1 deleted", func() bool { return e.gone("fg-1", &skiffv1alpha1.Instance{}) })
		e.waiting(w.Name)
		e.release("fg-2")
		e.eventually("the owner deleted after its last blocking dependent", func() bool {
			return e.gone(w.Name, &skiffv1alpha1.Workload{})
		})
	})

	t.Run("orphan", func(t *testing.T) {
		e := e.with(t)
		w := e.workload("or")
		e.instance("or-1", nil, owner(w, true))
		e.instance("or-2", nil, owner(w, false))
		e.delete(w, metav1.DeletePropagationOrphan)
		e.eventually("the owner deleted", func() bool { return e.gone(w.Name, &skiffv1alpha1.Workload{}) })
		// The references went before the finalizer did.
		for _, name := range []string{"or-1", "or-2"} {
			var inst skiffv1alpha1.Instance
			e.get(name, &inst)
			if len(inst.OwnerReferences) != 0 || inst.DeletionTimestamp != nil {
				t.Errorf("orphaned %s: owners %v, deletionTimestamp %v: want no owner, not deleting",
					name, inst.OwnerReferences, inst.DeletionTimestamp)
			}
		}
	})

	t.Run("dangling owners", func(t *testing.T) {
		e := e.with(t)
		w := e.workload("real")
		namesake := owner(w, true)
		namesake.UID = uuid.NewUUID()
		ghost := owner(w, true)
		ghost.Name, ghost.UID = "ghost", uuid.NewUUID()
		e.instance("real-1", nil, owner(w, true))
		e.instance("namesake-1", nil, namesake)
		e.instance("ghost-1", nil, ghost)
		e.eventually("instances of absent owners deleted", func() bool {
			return e.gone("namesake-1", &skiffv1alpha1.Instance{}) && e.gone("ghost-1", &skiffv1alpha1.Instance{})
		})
		e.get("real-1", &skiffv1alpha1.Instance{})
	})

	t.Run("two owners", func(t *testing.T) {
		e := e.with(t)
		w1, w2 := e.workload("shared-a"), e.workload("shared-b")
		second := owner(w2, true)
		second.Controller = nil // one controller at most
		e.instance("shared-1", nil, owner(w1, true), second)
		// The first owner deleted in the foreground: the instance, which
		// has another live owner, stays and stops blocking it.
		e.delete(w1, metav1.DeletePropagationForeground)
		e.eventually("the first owner deleted", func() bool { return e.gone(w1.Name, &skiffv1alpha1.Workload{}) })
		var inst skiffv1alpha1.Instance
		e.get("shared-1", &inst)
		if len(inst.OwnerReferences) != 1 || inst.OwnerReferences[0].UID != w2.UID || inst.DeletionTimestamp != nil {
			t.Errorf("instance owners %v, deletionTimestamp %v: want only %s, not deleting",
				inst.OwnerReferences, inst.DeletionTimestamp, w2.Name)
		}
		e.delete(w2, metav1.DeletePropagationBackground)
		e.eventually("the instance deleted with its last owner", func() bool {
			return e.gone("shared-1", &skiffv1alpha1.Instance{})
		})
	})
}

// env is a test's view of the apiserver, in the default namespace.
type env struct {
	t   *testing.T
	ctx context.Context
	c   client.Client
}

func (e env) with(t *testing.T) env { e.t = t; return e }

func (e env) eventually(what string, cond func() bool) {
	e.t.Helper()
	apiservertest.Eventually(e.t, what, cond)
}

func (e env) workload(name string) *skiffv1alpha1.Workload {
	e.t.Helper()
	w := &skiffv1alpha1.Workload{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: skiffv1alpha1.WorkloadSpec{
			Replicas: ptr.To(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: skiffv1alpha1.InstanceTemplate{
				Metadata: skiffv1alpha1.TemplateMetadata{Labels: map[string]string{"app": name}},
				Spec:     templateSpec(),
			},
		},
	}
	if err := e.c.Create(e.ctx, w); err != nil {
		e.t.Fatalf("create workload %q: %v", name, err)
	}
	return w
}

func (e env) instance(name string, finalizers []string, owners ...metav1.OwnerReference) {
	e.t.Helper()
	inst := &skiffv1alpha1.Instance{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Finalizers: finalizers, OwnerReferences: owners},
		Spec:       skiffv1alpha1.InstanceSpec{InstanceTemplateSpec: templateSpec()},
	}
	if err := e.c.Create(e.ctx, inst); err != nil {
		e.t.Fatalf("create instance %q: %v", name, err)
	}
}

func templateSpec() skiffv1alpha1.InstanceTemplateSpec {
	return skiffv1alpha1.InstanceTemplateSpec{Containers: []skiffv1alpha1.Container{{Name: "web", Image: "registry.local/web:1.0"}}}
}

// owner is a reference to w as the Workload controller writes it.
func owner(w *skiffv1alpha1.Workload, block bool) metav1.OwnerReference {
	return metav1.OwnerReference{
		APIVersion: skiffv1alpha1.SchemeGroupVersion.String(), Kind: "Workload", Name: w.Name, UID: w.UID,
		Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(block),
	}
}

func (e env) delete(obj client.Object, policy metav1.DeletionPropagation) {
	e.t.Helper()
	if err := e.c.Delete(e.ctx, obj, client.PropagationPolicy(policy)); err != nil {
		e.t.Fatalf("delete %q with %s: %v", obj.GetName(), policy, err)
	}
}

func (e env) get(name string, obj client.Object) {
	e.t.Helper()
	if err := e.c.Get(e.ctx, client.ObjectKey{Namespace: "default", Name: name}, obj); err != nil {
		e.t.Fatalf("get %q: %v", name, err)
	}
}

func (e env) gone(name string, obj client.Object) bool {
	e.t.Helper()
	err := e.c.Get(e.ctx, client.ObjectKey{Namespace: "default", Name: name}, obj)
	if err != nil && !apierrors.IsNotFound(err) {
		e.t.Fatalf("get %q: %v", name, err)
	}
	return apierrors.IsNotFound(err)
}

// heldOnly reports whether the Instance is being deleted and only the
// test's finalizer keeps it.
func (e env) heldOnly(name string) bool {
	var inst skiffv1alpha1.Instance
	e.get(name, &inst)
	return inst.DeletionTimestamp != nil && slices.Equal(inst.Finalizers, []string{hold})
}

// waiting fails unless the Workload is still there, deleting in the
// foreground.
func (e env) waiting(name string) {
	e.t.Helper()
	var w skiffv1alpha1.Workload
	e.get(name, &w)
	if w.DeletionTimestamp == nil || !slices.Contains(w.Finalizers, metav1.FinalizerDeleteDependents) {
		e.t.Fatalf("workload %q: deletionTimestamp %v, finalizers %v: want it waiting for its dependents",
			name, w.DeletionTimestamp, w.Finalizers)
	}
}

// release removes the test's finalizer from the Instance.
func (e env) release(name string) {
	e.t.Helper()
	var inst skiffv1alpha1.Instance
	e.get(name, &inst)
	base := client.MergeFromWithOptions(inst.DeepCopy(), client.MergeFromWithOptimisticLock{})
	inst.Finalizers = slices.DeleteFunc(inst.Finalizers, func(f string) bool { return f == hold })
	if err := e.c.Patch(e.ctx, &inst, base); err != nil {
		e.t.Fatalf("release %q: %v", name, err)
	}
}
