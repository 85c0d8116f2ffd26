package nodelifecycle

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/apiserver/apiservertest"
)

var eventually = apiservertest.Eventually

// throughout checks cond for d and fails at the first time it is false:
// for what must not happen while something holds.
func throughout(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if !cond() {
			t.Fatalf("%s stopped holding", what)
		}
	}
}

// harness runs the controller against a real apiserver and plays the
// agents' part: it writes Nodes and renews their Leases.
type harness struct {
	t     *testing.T
	ctx   context.Context
	admin client.Client
}

const grace = time.Second

func start(t *testing.T) *harness { return startWith(t, nil) }

// startWith runs the controller with a gossip view.
func startWith(t *testing.T, members WatchedMembers) *harness {
	s := apiservertest.Start(t)
	scheme := apiservertest.Scheme(t)
	mgr := s.Manager(t, scheme)
	c := &Controller{Client: mgr.GetClient(), Liveness: NewLeases(mgr.GetClient()), Members: members, Config: Config{GracePeriod: grace}}
	if err := c.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	apiservertest.Run(t, ctx, mgr.Start)
	admin, err := client.New(s.Admin, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, ctx: ctx, admin: admin}
}

// addNode registers a Ready node, as an agent does.
func (h *harness) addNode(name string) {
	n := &skiffv1alpha1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := h.admin.Create(h.ctx, n); err != nil {
		h.t.Fatal(err)
	}
	h.setReady(name)
}

// setReady writes the status an agent writes while it runs.
func (h *harness) setReady(name string) {
	n := h.node(name)
	n.Status.Phase = skiffv1alpha1.NodeReady
	meta.SetStatusCondition(&n.Status.Conditions, metav1.Condition{
		Type: skiffv1alpha1.NodeConditionReady, Status: metav1.ConditionTrue, Reason: "AgentReady",
	})
	if err := h.admin.Status().Update(h.ctx, n); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) node(name string) *skiffv1alpha1.Node {
	var n skiffv1alpha1.Node
	if err := h.admin.Get(h.ctx, client.ObjectKey{Name: name}, &n); err != nil {
		h.t.Fatal(err)
	}
	return &n
}

// renew renews the node's Lease every 100 ms, creating it first, until
// the returned stop is called.
func (h *harness) renew(node string) (stop func()) { return h.renewFor(node, 0) }

// renewFor renews with leaseDurationSeconds (0: unset), as an agent
// whose gossip is healthy does with a long one.
func (h *harness) renewFor(node string, seconds int32) (stop func()) {
	key := client.ObjectKey{Namespace: skiffv1alpha1.NodeLeaseNamespace, Name: node}
	once := func() error {
		now := metav1.NewMicroTime(time.Now())
		var l coordinationv1.Lease
		if err := h.admin.Get(h.ctx, key, &l); err != nil {
			l = coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name},
				Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(node), RenewTime: &now}}
			if seconds > 0 {
				l.Spec.LeaseDurationSeconds = ptr.To(seconds)
			}
			return client.IgnoreAlreadyExists(h.admin.Create(h.ctx, &l))
		}
		l.Spec.RenewTime = &now
		return h.admin.Update(h.ctx, &l)
	}
	if err := once(); err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(h.ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if err := once(); err != nil && ctx.Err() == nil {
				h.t.Errorf("renew lease %s: %v", key, err)
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}

// bind creates an Instance bound to node, with one toleration of the
// unreachable taint: for seconds, or for ever when seconds is nil.
func (h *harness) bind(name, node string, seconds *int64) {
	inst := &skiffv1alpha1.Instance{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}
	inst.Spec.Containers = []skiffv1alpha1.Container{{Name: "main", Image: "web:1"}}
	inst.Spec.Tolerations = []skiffv1alpha1.Toleration{{Key: skiffv1alpha1.TaintUnreachable, Operator: skiffv1alpha1.TolerationOpExists,
		Effect: skiffv1alpha1.TaintEffectNoExecute, TolerationSeconds: seconds}}
	if err := h.admin.Create(h.ctx, inst); err != nil {
		h.t.Fatal(err)
	}
	if err := h.admin.SubResource("binding").Create(h.ctx, inst, &skiffv1alpha1.Binding{NodeName: node}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) instance(name string) *skiffv1alpha1.Instance {
	var inst skiffv1alpha1.Instance
	if err := h.admin.Get(h.ctx, client.ObjectKey{Namespace: "default", Name: name}, &inst); err != nil {
		h.t.Fatal(err)
	}
	return &inst
}

func (h *harness) lost(name string) bool {
	inst := h.instance(name)
	return inst.Status.Phase == skiffv1alpha1.InstanceFailed && inst.Status.Reason == skiffv1alpha1.ReasonNodeLost
}

func unreachableTaint(n *skiffv1alpha1.Node) *skiffv1alpha1.Taint {
	if i := slices.IndexFunc(n.Spec.Taints, isTaint(skiffv1alpha1.TaintUnreachable)); i >= 0 {
		return &n.Spec.Taints[i]
	}
	return nil
}

func readyIs(n *skiffv1alpha1.Node, status metav1.ConditionStatus) bool {
	c := meta.FindStatusCondition(n.Status.Conditions, skiffv1alpha1.NodeConditionReady)
	return c != nil && c.Status == status
}

// TestNodeLostAndBack follows a node whose Lease stops being renewed: it
// turns Unknown, NotReady and tainted; its Instances are marked lost as
// their tolerations run out; renewed again, it loses the taint, and the
// controller leaves the agent's Ready=True alone.
func TestNodeLostAndBack(t *testing.T) {
	h := start(t)
	h.addNode("n1")
	h.addNode("n2")
	stopN1 := h.renew("n1")
	defer h.renew("n2")()
	h.bind("at-once", "n1", ptr.To[int64](0)) // defaulting leaves no Instance without a toleration
	h.bind("two-seconds", "n1", ptr.To[int64](2))
	h.bind("for-ever", "n1", nil)
	h.bind("default", "n1", ptr.To(skiffv1alpha1.DefaultTolerationSeconds))
	h.bind("elsewhere", "n2", ptr.To[int64](0))

	throughout(t, 3*grace, "both nodes untainted and Ready while renewing", func() bool {
		for _, name := range []string{"n1", "n2"} {
			n := h.node(name)
			if unreachableTaint(n) != nil || !readyIs(n, metav1.ConditionTrue) {
				return false
			}
		}
		return true
	})

	stopN1()
	var n1 *skiffv1alpha1.Node
	eventually(t, "n1 Unknown, NotReady and tainted unreachable", func() bool {
		n1 = h.node("n1")
		return readyIs(n1, metav1.ConditionUnknown) && n1.Status.Phase == skiffv1alpha1.NodeNotReady && unreachableTaint(n1) != nil
	})
	c := meta.FindStatusCondition(n1.Status.Conditions, skiffv1alpha1.NodeConditionReady)
	if c.Reason != ReasonNodeStatusUnknown || !strings.Contains(c.Message, "Lease was not renewed for") {
		t.Errorf("Ready condition %+v: want reason %s and how long the node was not seen", c, ReasonNodeStatusUnknown)
	}
	added := unreachableTaint(n1).TimeAdded
	if added == nil {
		t.Fatal("the unreachable taint has no timeAdded")
	}

	eventually(t, "the instance tolerating 0 s marked lost", func() bool { return h.lost("at-once") })
	inst := h.instance("at-once")
	if !meta.IsStatusConditionFalse(inst.Status.Conditions, skiffv1alpha1.InstanceReady) || !strings.Contains(inst.Status.Message, `node "n1"`) {
		t.Errorf("lost instance status %+v: want Ready=False and a message naming the node", inst.Status)
	}
	eventually(t, "a NodeLost event", func() bool {
		var evs corev1.EventList
		if h.admin.List(h.ctx, &evs, client.InNamespace("default")) != nil {
			return false
		}
		return slices.ContainsFunc(evs.Items, func(ev corev1.Event) bool {
			return ev.Reason == skiffv1alpha1.ReasonNodeLost && ev.InvolvedObject.Name == "at-once" && ev.Source.Component == Component
		})
	})

	eventually(t, "the instance tolerating 2 s marked lost", func() bool { return h.lost("two-seconds") })
	if seen, due := time.Now(), added.Add(2*time.Second); seen.Before(due) {
		t.Errorf("two-seconds lost at %s, before its toleration ran out at %s", seen, due)
	}
	for _, name := range []string{"for-ever", "default", "elsewhere"} {
		if h.lost(name) {
			t.Errorf("%s marked lost; its toleration has not run out or its node is alive", name)
		}
	}
	if n2 := h.node("n2"); unreachableTaint(n2) != nil || !readyIs(n2, metav1.ConditionTrue) {
		t.Errorf("n2, renewed all along, is %+v", n2)
	}

	defer h.renew("n1")()
	eventually(t, "the taint gone from n1 renewed again", func() bool { return unreachableTaint(h.node("n1")) == nil })
	if n1 := h.node("n1"); !readyIs(n1, metav1.ConditionUnknown) {
		t.Errorf("n1 Ready %+v: the controller leaves Ready=True to the agent", n1.Status.Conditions)
	}
	h.setReady("n1") // the agent's next status write
	throughout(t, 3*grace, "n1 Ready and untainted while renewed", func() bool {
		n := h.node("n1")
		return readyIs(n, metav1.ConditionTrue) && n.Status.Phase == skiffv1alpha1.NodeReady && unreachableTaint(n) == nil
	})
	if h.lost("for-ever") || h.lost("default") {
		t.Error("an instance was marked lost after its node came back")
	}
}

// TestNodeNeverRenewed: a registered node whose agent never writes a Lease
// is lost one grace period after its registration.
func TestNodeNeverRenewed(t *testing.T) {
	h := start(t)
	h.addNode("n1")
	eventually(t, "n1 tainted unreachable", func() bool { return unreachableTaint(h.node("n1")) != nil })
	if n := h.node("n1"); time.Since(n.CreationTimestamp.Time) < grace {
		t.Errorf("n1 tainted %s after registration, within the grace period", time.Since(n.CreationTimestamp.Time))
	}
}

// TestUnclaimedInstancesOnALostNodeAreReleased: the bind sets the agent
// finalizer; on a node whose agent is gone, an Instance the agent never
// accepted can still be deleted, while one it accepted waits for it.
func TestUnclaimedInstancesOnALostNodeAreReleased(t *testing.T) {
	h := start(t)
	h.addNode("n1")
	h.bind("ghost", "n1", nil)
	h.bind("accepted", "n1", nil)
	accepted := h.instance("accepted")
	accepted.Status.StartTime = ptr.To(metav1.Now())
	if err := h.admin.Status().Update(h.ctx, accepted); err != nil {
		t.Fatal(err)
	}
	eventually(t, "n1 tainted unreachable", func() bool { return unreachableTaint(h.node("n1")) != nil })
	for _, name := range []string{"ghost", "accepted"} {
		if err := h.admin.Delete(h.ctx, h.instance(name)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the Instance its agent never accepted gone", func() bool {
		err := h.admin.Get(h.ctx, client.ObjectKey{Namespace: "default", Name: "ghost"}, &skiffv1alpha1.Instance{})
		return apierrors.IsNotFound(err)
	})
	if got := h.instance("accepted"); !slices.Contains(got.Finalizers, skiffv1alpha1.AgentFinalizer) {
		t.Errorf("the accepted Instance lost its agent finalizer %v: its agent may still be stopping it", got.Finalizers)
	}
}

// TestDeletedNodesInstancesAreFinished: the Instances bound to a Node that
// is deleted end Failed/NodeLost, so that they are replaced and an agent
// registering the name again does not take them over.
func TestDeletedNodesInstancesAreFinished(t *testing.T) {
	h := start(t)
	h.addNode("n1")
	stop := h.renew("n1")
	defer stop()
	h.bind("orphan", "n1", nil)
	throughout(t, 2*grace, "the Instance of a live node not lost", func() bool { return !h.lost("orphan") })
	if err := h.admin.Delete(h.ctx, h.node("n1")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the deleted node's Instance Failed/NodeLost", func() bool { return h.lost("orphan") })
	if msg := h.instance("orphan").Status.Message; !strings.Contains(msg, `node "n1" was deleted`) {
		t.Errorf("message %q, want it to say the node was deleted", msg)
	}
	// The bind set the agent finalizer; no agent will release it now, so
	// the controller does, and the Instance can be deleted.
	eventually(t, "the agent finalizer released", func() bool {
		return !slices.Contains(h.instance("orphan").Finalizers, skiffv1alpha1.AgentFinalizer)
	})
	if err := h.admin.Delete(h.ctx, h.instance("orphan")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the Instance gone", func() bool {
		err := h.admin.Get(h.ctx, client.ObjectKey{Namespace: "default", Name: "orphan"}, &skiffv1alpha1.Instance{})
		return apierrors.IsNotFound(err)
	})
}
