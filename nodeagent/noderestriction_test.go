package nodeagent

import (
	"context"
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/apiserver/apiservertest"
	"skiff.dev/skiff/identity"
)

// TestNodeRestriction: what a node's own identity may and may not do
// with Nodes, Instances, Leases and Events.
func TestNodeRestriction(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	cfg := testConfig(s, t.TempDir(), "n1")
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	j, err := join(ctx, cfg, a.scheme, joinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	admin := adminClient(t, s, a)
	other, _ := identity.New()
	n2 := &skiffv1alpha1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n2"}, Spec: skiffv1alpha1.NodeSpec{PublicKey: other.PublicKeyString()}}
	mine, theirs := boundInstance("mine", "n1"), boundInstance("theirs", "n2")
	for _, obj := range []client.Object{n2, mine, theirs} {
		if err := admin.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	for _, inst := range []*skiffv1alpha1.Instance{mine, theirs} {
		if err := admin.SubResource("binding").Create(ctx, inst, &skiffv1alpha1.Binding{NodeName: inst.Labels["node"]}); err != nil {
			t.Fatal(err)
		}
	}
	node := j.client
	get := func(obj client.Object, name, ns string) client.Object {
		if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj); err != nil {
			t.Fatal(err)
		}
		return obj
	}
	forbidden := func(what string, err error) {
		t.Helper()
		if !apierrors.IsForbidden(err) {
			t.Errorf("%s: %v, want 403 Forbidden", what, err)
		}
	}
	allowed := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %v, want allowed", what, err)
		}
	}

	n2Got := get(&skiffv1alpha1.Node{}, "n2", "").(*skiffv1alpha1.Node)
	n2Got.Status.Phase = skiffv1alpha1.NodeDown
	forbidden("n1 writes n2's status", node.Status().Update(ctx, n2Got))
	n1Got := get(&skiffv1alpha1.Node{}, "n1", "").(*skiffv1alpha1.Node)
	n1Got.Status.Phase = skiffv1alpha1.NodeReady
	allowed("n1 writes its own status", node.Status().Update(ctx, n1Got))
	forbidden("n1 deletes n2", node.Delete(ctx, n2Got))
	n1Got = get(&skiffv1alpha1.Node{}, "n1", "").(*skiffv1alpha1.Node)
	n1Got.Spec.Taints = nil
	n1Got.Labels = map[string]string{"gpu": "yes"}
	forbidden("n1 relabels or untaints its own Node", node.Update(ctx, n1Got))

	forbidden("n1 lists workloads", node.List(ctx, &skiffv1alpha1.WorkloadList{}))
	forbidden("n1 lists namespaces", node.List(ctx, &corev1.NamespaceList{}))
	forbidden("n1 lists every instance", node.List(ctx, &skiffv1alpha1.InstanceList{}))
	allowed("n1 lists its instances", node.List(ctx, &skiffv1alpha1.InstanceList{}, client.MatchingFields{"spec.nodeName": "n1"}))
	forbidden("n1 lists n2's instances", node.List(ctx, &skiffv1alpha1.InstanceList{}, client.MatchingFields{"spec.nodeName": "n2"}))
	forbidden("n1 gets n2's instance by name", node.Get(ctx, client.ObjectKeyFromObject(theirs), &skiffv1alpha1.Instance{}))

	theirsGot := get(&skiffv1alpha1.Instance{}, "theirs", "default").(*skiffv1alpha1.Instance)
	theirsGot.Status.Phase = skiffv1alpha1.InstanceFailed
	forbidden("n1 writes the status of an instance on n2", node.Status().Update(ctx, theirsGot))
	mineGot := get(&skiffv1alpha1.Instance{}, "mine", "default").(*skiffv1alpha1.Instance)
	mineGot.Status.Phase = skiffv1alpha1.InstanceRunning
	mineGot.Labels["app"] = "hijacked"
	allowed("n1 writes the status of its instance", node.Status().Update(ctx, mineGot))
	if got := get(&skiffv1alpha1.Instance{}, "mine", "default").(*skiffv1alpha1.Instance); got.Labels["app"] == "hijacked" {
		t.Error("a status write changed the instance's labels")
	}

	// The bind set the agent finalizer; the node may take it off and put
	// it back.
	mineGot = get(&skiffv1alpha1.Instance{}, "mine", "default").(*skiffv1alpha1.Instance)
	if !controllerutil.RemoveFinalizer(mineGot, skiffv1alpha1.AgentFinalizer) {
		t.Fatalf("finalizers %v after the bind, want %s", mineGot.Finalizers, skiffv1alpha1.AgentFinalizer)
	}
	allowed("n1 removes the agent finalizer from its instance", node.Update(ctx, mineGot))
	mineGot = get(&skiffv1alpha1.Instance{}, "mine", "default").(*skiffv1alpha1.Instance)
	mineGot.Finalizers = append(mineGot.Finalizers, skiffv1alpha1.AgentFinalizer)
	allowed("n1 adds the agent finalizer to its instance", node.Update(ctx, mineGot))
	mineGot = get(&skiffv1alpha1.Instance{}, "mine", "default").(*skiffv1alpha1.Instance)
	mineGot.Labels["sneaky"] = "yes"
	forbidden("n1 relabels its instance", node.Update(ctx, mineGot))

	lease := func(name string) *coordinationv1.Lease {
		return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: skiffv1alpha1.NodeLeaseNamespace, Name: name}}
	}
	allowed("n1 creates its lease", node.Create(ctx, lease("n1")))
	forbidden("n1 creates n2's lease", node.Create(ctx, lease("n2")))

	event := func(name, ns string, about corev1.ObjectReference) *corev1.Event {
		return &corev1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, InvolvedObject: about, Reason: "Test", Type: corev1.EventTypeWarning}
	}
	instRef := func(i *skiffv1alpha1.Instance) corev1.ObjectReference {
		return corev1.ObjectReference{Kind: "Instance", APIVersion: "skiff.dev/v1alpha1", Namespace: i.Namespace, Name: i.Name}
	}
	allowed("n1 records an event about its instance", node.Create(ctx, event("e1", "default", instRef(mine))))
	allowed("n1 records an event about its Node", node.Create(ctx, event("e2", "default", corev1.ObjectReference{Kind: "Node", Name: "n1"})))
	forbidden("n1 records an event about n2's instance", node.Create(ctx, event("e3", "default", instRef(theirs))))
	forbidden("n1 records an event about n2", node.Create(ctx, event("e4", "default", corev1.ObjectReference{Kind: "Node", Name: "n2"})))
	forbidden("n1 records an event about a Workload", node.Create(ctx, event("e5", "default", corev1.ObjectReference{Kind: "Workload", Namespace: "default", Name: "w"})))
	forbidden("n1 records an event about its instance in another namespace", node.Create(ctx, event("e6", skiffv1alpha1.NodeLeaseNamespace, instRef(mine))))

	// Deleting the Node withdraws the trust in its key.
	if err := admin.Delete(ctx, get(&skiffv1alpha1.Node{}, "n1", "")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "n1's key no longer trusted", func() bool {
		return apierrors.IsUnauthorized(node.Get(ctx, client.ObjectKey{Name: "n2"}, &skiffv1alpha1.Node{}))
	})
}
