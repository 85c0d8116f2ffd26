package scheduler

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/controllers/metrics"
)

// TestController runs the scheduler against a real apiserver: pending
// Instances are bound without over-committing, one that fits nowhere says
// why, and a new node lets it through.
func TestController(t *testing.T) {
	c := runScheduler(t)
	c.addNode(node("n1", "1", "4Gi"))
	c.addNode(node("n2", "1", "4Gi"))

	// Four Instances of 600m on two 1-cpu nodes: two fit, one per node.
	for i := range 4 {
		c.create(instance(fmt.Sprintf("web-%d", i), "600m", ""))
	}
	list := func() (bound map[string][]string, unschedulable []skiffv1alpha1.Instance) {
		var l skiffv1alpha1.InstanceList
		if err := c.admin.List(c.ctx, &l); err != nil {
			t.Fatal(err)
		}
		bound = map[string][]string{}
		for _, inst := range l.Items {
			if inst.Spec.NodeName != "" {
				bound[inst.Spec.NodeName] = append(bound[inst.Spec.NodeName], inst.Name)
			} else if meta.IsStatusConditionFalse(inst.Status.Conditions, skiffv1alpha1.InstanceScheduled) {
				unschedulable = append(unschedulable, inst)
			}
		}
		return bound, unschedulable
	}
	var bound map[string][]string
	var waiting []skiffv1alpha1.Instance
	eventually(t, "two bound, two unschedulable", func() bool {
		bound, waiting = list()
		return len(bound["n1"])+len(bound["n2"]) == 2 && len(waiting) == 2
	})
	if len(bound["n1"]) != 1 || len(bound["n2"]) != 1 {
		t.Errorf("placements %v: want one per node, none over-committed", bound)
	}
	msg := meta.FindStatusCondition(waiting[0].Status.Conditions, skiffv1alpha1.InstanceScheduled).Message
	if want := "0/2 nodes are available: 2 insufficient cpu."; msg != want {
		t.Errorf("no-fit message %q, want %q", msg, want)
	}
	eventually(t, "a FailedScheduling event", func() bool {
		return c.hasEvent(waiting[0].Name, "FailedScheduling", "insufficient cpu")
	})

	// A new node with room for both: the waiting ones are retried.
	c.addNode(node("n3", "2", "4Gi"))
	eventually(t, "the waiting instances bound to the new node", func() bool {
		bound, _ = list()
		return len(bound["n3"]) == 2
	})
	placed := c.get(bound["n3"][0])
	if !meta.IsStatusConditionTrue(placed.Status.Conditions, skiffv1alpha1.InstanceScheduled) {
		t.Errorf("bound instance conditions %+v: want Scheduled=True", placed.Status.Conditions)
	}
	// Recorded once Reconcile returns, just after the bind.
	eventually(t, "four scheduled attempts recorded", func() bool { return c.attempts(metrics.ResultScheduled) == 4 })
	if got := c.attempts(metrics.ResultUnschedulable); got < 2 {
		t.Errorf("%v unschedulable attempts recorded, want at least 2", got)
	}
}

// TestControllerSchedulingFailures: an Instance that fits nowhere names
// each node's failing filter in its status, sorted by node; binding clears
// the list.
func TestControllerSchedulingFailures(t *testing.T) {
	c := runScheduler(t)
	c.addNode(node("small", "1", "4Gi"))
	c.addNode(node("gpu", "8", "4Gi", func(n *skiffv1alpha1.Node) {
		n.Spec.Taints = []skiffv1alpha1.Taint{{Key: "dedicated", Value: "gpu", Effect: skiffv1alpha1.TaintEffectNoSchedule}}
	}))
	c.addNode(node("down", "8", "4Gi", func(n *skiffv1alpha1.Node) { n.Status.Conditions[0].Status = metav1.ConditionFalse }))
	c.create(instance("big", "2", ""))

	inst := c.unschedulable("big")
	want := "0/3 nodes are available: 1 insufficient cpu, 1 not ready, 1 untolerated taint {dedicated=gpu}."
	if got := meta.FindStatusCondition(inst.Status.Conditions, skiffv1alpha1.InstanceScheduled).Message; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	wantFailures := []skiffv1alpha1.NodeSchedulingFailure{
		{Node: "down", Reason: "not ready"},
		{Node: "gpu", Reason: "untolerated taint {dedicated=gpu}"},
		{Node: "small", Reason: "insufficient cpu"},
	}
	if !slices.Equal(inst.Status.SchedulingFailures, wantFailures) {
		t.Errorf("scheduling failures %v, want %v", inst.Status.SchedulingFailures, wantFailures)
	}

	c.addNode(node("large", "4", "4Gi"))
	if got := c.boundTo("big"); got != "large" {
		t.Fatalf("bound to %q, want large", got)
	}
	eventually(t, "the failures cleared once bound", func() bool {
		return len(c.get("big").Status.SchedulingFailures) == 0
	})
}

// staleClient reads one Instance unbound although it is bound, as the
// scheduler's informer cache does before it sees the binding.
type staleClient struct {
	client.Client
	unbound string
}

func (s staleClient) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	err := s.Client.Get(ctx, key, obj, opts...)
	if inst, ok := obj.(*skiffv1alpha1.Instance); ok && inst.Name == s.unbound {
		inst.Spec.NodeName = ""
	}
	return err
}

func (s staleClient) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	err := s.Client.List(ctx, list, opts...)
	if l, ok := list.(*skiffv1alpha1.InstanceList); ok {
		for i := range l.Items {
			if l.Items[i].Name == s.unbound {
				l.Items[i].Spec.NodeName = ""
			}
		}
	}
	return err
}

// TestBindConflictRequeues: a bind that loses the race (the Instance was
// bound meanwhile) re-queues without an error, forgets the assumed
// placement and counts as an error attempt.
func TestBindConflictRequeues(t *testing.T) {
	c := newCluster(t)
	c.addNode(node("n1", "4", "4Gi"))
	c.addNode(node("n2", "4", "4Gi"))
	inst := instance("web", "1", "")
	c.create(inst)
	if err := c.admin.SubResource("binding").Create(c.ctx, inst, &skiffv1alpha1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: inst.Name, Namespace: inst.Namespace}, NodeName: "n1",
	}); err != nil {
		t.Fatal(err)
	}
	ctrl := &Controller{Client: staleClient{c.admin, "web"}, Scheduler: New(Spread), Cache: NewCache(time.Minute), Metrics: c.metrics}
	req := reconcile.Request{NamespacedName: client.ObjectKeyFromObject(inst)}
	res, err := ctrl.Reconcile(c.ctx, req)
	if err != nil || !res.Requeue {
		t.Fatalf("reconcile = %+v, %v: want a re-queue without error", res, err)
	}
	if n := ctrl.Cache.Assumed(); n != 0 {
		t.Errorf("%d placements still assumed after the failed bind", n)
	}
	if got := c.attempts(metrics.ResultError); got != 1 {
		t.Errorf("%v error attempts, want 1", got)
	}
	if got := c.get("web").Spec.NodeName; got != "n1" {
		t.Errorf("instance on %q after the lost race, want n1 still", got)
	}

	// The re-queued request, with the cache caught up, finds it bound and
	// makes no attempt.
	ctrl.Client = c.admin
	if res, err := ctrl.Reconcile(c.ctx, req); err != nil || res.Requeue {
		t.Errorf("reconcile of the bound instance = %+v, %v", res, err)
	}
	if got := c.attempts(metrics.ResultError) + c.attempts(metrics.ResultScheduled); got != 1 {
		t.Errorf("%v attempts after the bound instance's reconcile, want still 1", got)
	}
}

// TestControllerPreemption: a high-priority Instance that fits nowhere
// preempts the least important Instance on a full node. The victim is
// Failed/Preempted and deleted; while a finalizer (the node agent's, in a
// real cluster) holds it, it keeps its room, the preemptor waits nominated
// to the node and a lower-priority newcomer cannot take the room; once the
// victim is gone the preemptor binds there. The other node's Instance is
// untouched.
func TestControllerPreemption(t *testing.T) {
	c := runScheduler(t)
	c.addNode(node("n1", "1", "4Gi"))
	c.addNode(node("n2", "1", "4Gi"))
	const hold = "test.skiff.dev/hold"
	held := func(i *skiffv1alpha1.Instance) { i.Finalizers = []string{hold} }
	c.create(instance("low", "600m", "", prio(1), held), instance("mid", "800m", "", prio(2), held))
	victimNode, otherNode := c.boundTo("low"), c.boundTo("mid")

	c.create(instance("high", "800m", "", prio(10)))
	var victim *skiffv1alpha1.Instance
	eventually(t, "low preempted and being deleted", func() bool {
		victim = c.get("low")
		return victim.Status.Reason == skiffv1alpha1.ReasonPreempted && victim.DeletionTimestamp != nil
	})
	if victim.Status.Phase != skiffv1alpha1.InstanceFailed || !strings.Contains(victim.Status.Message, "default/high") ||
		!meta.IsStatusConditionFalse(victim.Status.Conditions, skiffv1alpha1.InstanceReady) {
		t.Errorf("victim status %+v: want Failed, a message naming default/high, Ready=False", victim.Status)
	}
	high := c.unschedulable("high")
	if high.Status.NominatedNodeName != victimNode || high.Spec.NodeName != "" {
		t.Errorf("preemptor nominated to %q, bound to %q: want nominated to %s and not bound while the victim runs",
			high.Status.NominatedNodeName, high.Spec.NodeName, victimNode)
	}

	// A node change sends high round again; it must wait while the victim
	// is still there.
	before := c.attempts(metrics.ResultUnschedulable)
	var n2 skiffv1alpha1.Node
	if err := c.admin.Get(c.ctx, client.ObjectKey{Name: otherNode}, &n2); err != nil {
		t.Fatal(err)
	}
	n2.Labels["poked"] = "yes"
	if err := c.admin.Update(c.ctx, &n2); err != nil {
		t.Fatal(err)
	}
	eventually(t, "another attempt for high", func() bool { return c.attempts(metrics.ResultUnschedulable) > before })
	if got := c.get("high").Spec.NodeName; got != "" {
		t.Fatalf("high bound to %q while its victim still holds the room", got)
	}

	// A low-priority newcomer would fit beside the victim (600m of 1 cpu),
	// but the room is nominated for high.
	c.create(instance("newcomer", "300m", ""))
	c.unschedulable("newcomer")

	victim.Finalizers = nil
	if err := c.admin.Update(c.ctx, victim); err != nil {
		t.Fatal(err)
	}
	if got := c.boundTo("high"); got != victimNode {
		t.Errorf("high bound to %q, want %q where it preempted", got, victimNode)
	}
	eventually(t, "the victim deleted", func() bool { return c.get("low") == nil })
	eventually(t, "the nomination and failures cleared once bound", func() bool {
		h := c.get("high")
		return h.Status.NominatedNodeName == "" && len(h.Status.SchedulingFailures) == 0
	})
	if inst := c.get("newcomer"); inst.Spec.NodeName != "" {
		t.Errorf("newcomer bound to %q: it took room nominated for high or over-committed", inst.Spec.NodeName)
	}
	if mid := c.get("mid"); mid.Spec.NodeName != otherNode || mid.DeletionTimestamp != nil || mid.Status.Reason != "" {
		t.Errorf("mid on the other node touched: %+v", mid.Status)
	}
	eventually(t, "Preempted and Preempting events", func() bool {
		return c.hasEvent("low", "Preempted", "default/high") && c.hasEvent("high", "Preempting", "default/low")
	})
}

// TestNoOvercommitUnderConcurrentBinds: 60 Instances created at once for
// room for 20, decided in batches and bound by eight workers while the
// informers lag: exactly 20 are bound, no node holds more than its cpu,
// and the rest are told they fit nowhere.
func TestNoOvercommitUnderConcurrentBinds(t *testing.T) {
	c := runScheduler(t)
	for i := range 5 {
		c.addNode(node(fmt.Sprintf("n%d", i), "2", "8Gi"))
	}
	var names []string
	for i := range 60 {
		inst := instance(fmt.Sprintf("i%02d", i), "500m", "64Mi")
		c.create(inst)
		names = append(names, inst.Name)
	}
	perNode := map[string]int{}
	eventually(t, "every Instance bound or told it fits nowhere", func() bool {
		clear(perNode)
		for _, name := range names {
			inst := c.get(name)
			switch {
			case inst.Spec.NodeName != "":
				perNode[inst.Spec.NodeName]++
			case !meta.IsStatusConditionFalse(inst.Status.Conditions, skiffv1alpha1.InstanceScheduled):
				return false
			}
		}
		return true
	})
	bound := 0
	for n, count := range perNode {
		bound += count
		if count > 4 {
			t.Errorf("node %s holds %d Instances of 500m on 2 cpus", n, count)
		}
	}
	if bound != 20 {
		t.Errorf("%d Instances bound, want 20 (room for 4 on each of 5 nodes)", bound)
	}
}
