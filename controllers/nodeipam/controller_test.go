package nodeipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/apiserver/apiservertest"
)

var eventually = apiservertest.Eventually

// harness is a real apiserver; run starts the controller against it in
// a manager of its own, as `skiff server` does.
type harness struct {
	t      *testing.T
	ctx    context.Context
	server *apiservertest.Server
	scheme *runtime.Scheme
	admin  client.WithWatch
}

func start(t *testing.T) *harness {
	s := apiservertest.Start(t)
	scheme := apiservertest.Scheme(t)
	admin, err := client.NewWithWatch(s.Admin, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return &harness{t: t, ctx: ctx, server: s, scheme: scheme, admin: admin}
}

// run starts the controller with cfg until stop is called (or the test
// ends).
func (h *harness) run(cfg Config) (stop func()) {
	mgr := h.server.Manager(h.t, h.scheme)
	c := &Controller{Client: mgr.GetClient(), Config: cfg}
	if err := c.SetupWithManager(mgr); err != nil {
		h.t.Fatal(err)
	}
	return apiservertest.Run(h.t, h.ctx, mgr.Start)
}

// addNode registers a Node, with a CIDR if an admin gives one.
func (h *harness) addNode(name, cidr string) {
	h.t.Helper()
	n := &skiffv1alpha1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: skiffv1alpha1.NodeSpec{InstanceCIDR: cidr}}
	if err := h.admin.Create(h.ctx, n); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) deleteNode(name string) {
	h.t.Helper()
	if err := h.admin.Delete(h.ctx, &skiffv1alpha1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) cidr(name string) string {
	h.t.Helper()
	var n skiffv1alpha1.Node
	if err := h.admin.Get(h.ctx, client.ObjectKey{Name: name}, &n); err != nil {
		h.t.Fatal(err)
	}
	return n.Spec.InstanceCIDR
}

// tainted reports whether the Node has the network-unavailable taint.
func (h *harness) tainted(name string) bool {
	h.t.Helper()
	var n skiffv1alpha1.Node
	if err := h.admin.Get(h.ctx, client.ObjectKey{Name: name}, &n); err != nil {
		h.t.Fatal(err)
	}
	return slices.ContainsFunc(n.Spec.Taints, func(t skiffv1alpha1.Taint) bool {
		return t.Key == skiffv1alpha1.TaintNetworkUnavailable && t.Effect == skiffv1alpha1.TaintEffectNoSchedule
	})
}

// waitCIDR waits for the Node's CIDR and returns it.
func (h *harness) waitCIDR(name string) string {
	h.t.Helper()
	var cidr string
	eventually(h.t, name+"'s instanceCIDR", func() bool {
		cidr = h.cidr(name)
		return cidr != ""
	})
	return cidr
}

func (h *harness) hasEvent(node, reason string) bool {
	var evs corev1.EventList
	if h.admin.List(h.ctx, &evs, client.InNamespace(metav1.NamespaceDefault)) != nil {
		return false
	}
	for _, ev := range evs.Items {
		if ev.InvolvedObject.Kind == "Node" && ev.InvolvedObject.Name == node && ev.Reason == reason && ev.Source.Component == Component {
			return true
		}
	}
	return false
}

// TestControllerAllocatesAndReleases: Nodes get distinct subnets of the
// cluster CIDR; a deleted Node's subnet goes to the next Node.
func TestControllerAllocatesAndReleases(t *testing.T) {
	h := start(t)
	h.run(Config{ClusterCIDR: "10.99.0.0/16", NodeCIDRMaskSize: 24})
	cluster := netip.MustParsePrefix("10.99.0.0/16")
	byCIDR := map[string]string{}
	for i := range 4 {
		name := fmt.Sprintf("n%d", i)
		h.addNode(name, "")
		cidr := h.waitCIDR(name)
		p, err := netip.ParsePrefix(cidr)
		if err != nil || p.Bits() != 24 || !cluster.Contains(p.Addr()) {
			t.Errorf("%s got %q, want a /24 of %s", name, cidr, cluster)
		}
		if other, dup := byCIDR[cidr]; dup {
			t.Errorf("%s and %s both got %s", name, other, cidr)
		}
		byCIDR[cidr] = name
	}
	freed := h.cidr("n1")
	h.deleteNode("n1")
	h.addNode("n4", "")
	if got := h.waitCIDR("n4"); got != freed {
		t.Errorf("n4 got %s, want %s, the lowest free since n1 left", got, freed)
	}
}

// TestControllerFullClusterCIDR: with room for two Nodes, a third waits
// with a CIDRNotAvailable Event, and gets the subnet of the first Node to
// leave at once (not at its next retry).
func TestControllerFullClusterCIDR(t *testing.T) {
	h := start(t)
	h.run(Config{ClusterCIDR: "10.99.0.0/23", NodeCIDRMaskSize: 24})
	h.addNode("a", "")
	h.addNode("b", "")
	freed := h.waitCIDR("a")
	h.waitCIDR("b")
	h.addNode("c", "")
	eventually(t, "a CIDRNotAvailable event for c", func() bool { return h.hasEvent("c", ReasonCIDRNotAvailable) })
	if got := h.cidr("c"); got != "" {
		t.Fatalf("c got %s in a full cluster CIDR", got)
	}
	// No Instance should land where it could get no address.
	if !h.tainted("c") || h.tainted("a") {
		t.Fatalf("network-unavailable taint: c %v, a %v; want only c", h.tainted("c"), h.tainted("a"))
	}
	h.deleteNode("a")
	deadline := time.Now().Add(fullRetry / 3)
	for h.cidr("c") == "" {
		if time.Now().After(deadline) {
			t.Fatalf("c still without a subnet %s after a's deletion", fullRetry/3)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := h.cidr("c"); got != freed {
		t.Errorf("c got %s, want a's %s", got, freed)
	}
	if h.tainted("c") {
		t.Error("c keeps the network-unavailable taint with its subnet")
	}
}

// TestControllerRestart: a new controller (a restart, a new leader)
// learns the subnets Nodes hold before it allocates; an admin's CIDR is
// kept and, inside the cluster CIDR, not handed out again.
func TestControllerRestart(t *testing.T) {
	h := start(t)
	cfg := Config{ClusterCIDR: "10.99.0.0/16", NodeCIDRMaskSize: 24}
	stop := h.run(cfg)
	h.addNode("x", "")
	h.addNode("y", "")
	x, y := h.waitCIDR("x"), h.waitCIDR("y")
	stop()

	h.addNode("admin-in", "10.99.2.0/24")
	h.addNode("admin-out", "192.168.50.0/24")
	h.run(cfg)
	h.addNode("w", "")
	got := h.waitCIDR("w")
	if got == x || got == y || got != "10.99.3.0/24" {
		t.Errorf("w got %s with x on %s, y on %s and an admin's 10.99.2.0/24: want 10.99.3.0/24", got, x, y)
	}
	for name, want := range map[string]string{"x": x, "y": y, "admin-in": "10.99.2.0/24", "admin-out": "192.168.50.0/24"} {
		if got := h.cidr(name); got != want {
			t.Errorf("%s's CIDR is %s, want %s untouched", name, got, want)
		}
	}
}

// TestReconcileFailedWrite: a refused write frees the subnet; a write
// whose outcome is unknown keeps it for the same Node.
func TestReconcileFailedWrite(t *testing.T) {
	h := start(t)
	var fail error
	c := &Controller{Config: Config{ClusterCIDR: "10.99.0.0/23", NodeCIDRMaskSize: 24}}
	c.Client = interceptor.NewClient(h.admin, interceptor.Funcs{
		Patch: func(ctx context.Context, cl client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			if fail != nil {
				return fail
			}
			return cl.Patch(ctx, obj, patch, opts...)
		},
	})
	if err := c.init(); err != nil {
		t.Fatal(err)
	}
	h.addNode("n", "")
	req := reconcile.Request{NamespacedName: client.ObjectKey{Name: "n"}}

	fail = apierrors.NewForbidden(schema.GroupResource{Resource: "nodes"}, "n", errors.New("no"))
	if _, err := c.Reconcile(h.ctx, req); !apierrors.IsForbidden(err) {
		t.Fatalf("reconcile: %v, want the Forbidden", err)
	}
	if _, held := c.alloc.Held("n"); held || c.alloc.Free() != 2 {
		t.Errorf("after a refused write: held %v, %d free, want the subnet freed", held, c.alloc.Free())
	}

	fail = errors.New("connection reset")
	if _, err := c.Reconcile(h.ctx, req); err == nil {
		t.Fatal("reconcile succeeded through a broken connection")
	}
	p, held := c.alloc.Held("n")
	if !held || c.alloc.Free() != 1 {
		t.Errorf("after a write of unknown outcome: held %v, %d free, want the subnet kept for n", held, c.alloc.Free())
	}

	fail = nil
	if _, err := c.Reconcile(h.ctx, req); err != nil {
		t.Fatal(err)
	}
	if got := h.cidr("n"); got != p.String() {
		t.Errorf("n got %s, want %s, the subnet held for it", got, p)
	}
	h.deleteNode("n")
	if _, err := c.Reconcile(h.ctx, req); err != nil {
		t.Fatal(err)
	}
	if c.alloc.Free() != 2 {
		t.Errorf("%d free after n was deleted, want 2", c.alloc.Free())
	}
}
