package scheduler

import (
	"fmt"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

func prio(p int32) func(*skiffv1alpha1.Instance) {
	return func(i *skiffv1alpha1.Instance) { i.Spec.Priority = ptr.To(p) }
}

// bound places instances on n as the informer shows bound Instances.
func bound(n *skiffv1alpha1.Node, insts ...*skiffv1alpha1.Instance) *NodeInfo {
	for _, inst := range insts {
		inst.Spec.NodeName = n.Name
	}
	return NewNodeInfo(n, insts...)
}

// running is a bound Instance of priority p asking for cpu.
func running(name string, p int32, cpu string, mutate ...func(*skiffv1alpha1.Instance)) *skiffv1alpha1.Instance {
	return instance(name, cpu, "", append([]func(*skiffv1alpha1.Instance){prio(p)}, mutate...)...)
}

func TestPreempt(t *testing.T) {
	zone := func(z string) func(*skiffv1alpha1.Node) { return func(n *skiffv1alpha1.Node) { n.Labels["zone"] = z } }
	antiWeb := func(key string) func(*skiffv1alpha1.Instance) {
		return func(i *skiffv1alpha1.Instance) {
			i.Labels = map[string]string{"app": "api"}
			i.Spec.Affinity = &skiffv1alpha1.Affinity{InstanceAntiAffinity: &skiffv1alpha1.InstanceAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: []skiffv1alpha1.InstanceAffinityTerm{{
					LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, TopologyKey: key,
				}},
			}}
		}
	}
	deleting := func(i *skiffv1alpha1.Instance) { i.DeletionTimestamp = ptr.To(metav1.Now()) }
	preempted := func(i *skiffv1alpha1.Instance) {
		i.Status.Phase, i.Status.Reason = skiffv1alpha1.InstanceFailed, skiffv1alpha1.ReasonPreempted
	}
	high := running("high", 10, "1")
	for _, tc := range []struct {
		name        string
		nodes       []*NodeInfo
		inst        *skiffv1alpha1.Instance
		wantNode    string
		wantVictims []string
	}{
		{
			name: "lowest priority victims",
			nodes: []*NodeInfo{
				bound(node("a", "1", "4Gi"), running("mid", 5, "1")),
				bound(node("b", "1", "4Gi"), running("low", 1, "1")),
			},
			inst: high, wantNode: "b", wantVictims: []string{"low"},
		},
		{
			name: "fewest victims at equal priority",
			nodes: []*NodeInfo{
				bound(node("a", "1", "4Gi"), running("a-0", 1, "500m"), running("a-1", 1, "500m")),
				bound(node("b", "1", "4Gi"), running("b-0", 1, "1")),
			},
			inst: high, wantNode: "b", wantVictims: []string{"b-0"},
		},
		{
			name: "the highest victim priority counts before the number",
			nodes: []*NodeInfo{
				bound(node("a", "1", "4Gi"), running("a-0", 1, "300m"), running("a-1", 1, "300m"), running("a-2", 1, "300m")),
				bound(node("b", "1", "4Gi"), running("b-0", 5, "1")),
			},
			inst: high, wantNode: "a", wantVictims: []string{"a-0", "a-1", "a-2"},
		},
		{
			name: "the sum of priorities breaks a tie",
			nodes: []*NodeInfo{
				bound(node("a", "1", "4Gi"), running("a-0", 3, "500m"), running("a-1", 3, "500m")),
				bound(node("b", "1", "4Gi"), running("b-0", 3, "500m"), running("b-1", 1, "500m")),
			},
			inst: high, wantNode: "b", wantVictims: []string{"b-0", "b-1"},
		},
		{
			name: "the node name breaks a full tie",
			nodes: []*NodeInfo{
				bound(node("b", "1", "4Gi"), running("b-0", 1, "1")),
				bound(node("a", "1", "4Gi"), running("a-0", 1, "1")),
			},
			inst: high, wantNode: "a", wantVictims: []string{"a-0"},
		},
		{
			name:  "only as many victims as needed, the least important",
			nodes: []*NodeInfo{bound(node("a", "2", "4Gi"), running("p1", 1, "1"), running("p2", 2, "500m"), running("p3", 3, "500m"))},
			inst:  high, wantNode: "a", wantVictims: []string{"p1"},
		},
		{
			name:  "never equal priority",
			nodes: []*NodeInfo{bound(node("a", "1", "4Gi"), running("peer", 10, "1"))},
			inst:  high,
		},
		{
			name:  "never higher priority",
			nodes: []*NodeInfo{bound(node("a", "1", "4Gi"), running("boss", 20, "1"))},
			inst:  high,
		},
		{
			name:  "unset priority is 0: nothing below it",
			nodes: []*NodeInfo{bound(node("a", "1", "4Gi"), instance("other", "1", ""))},
			inst:  instance("i", "1", ""),
		},
		{
			name: "no node works: too small even when emptied",
			nodes: []*NodeInfo{
				bound(node("a", "500m", "4Gi"), running("low", 1, "500m")),
			},
			inst: high,
		},
		{
			name: "no node works: evicting does not lift a taint",
			nodes: []*NodeInfo{bound(node("a", "1", "4Gi", func(n *skiffv1alpha1.Node) {
				n.Spec.Taints = []skiffv1alpha1.Taint{{Key: "dedicated", Value: "gpu", Effect: skiffv1alpha1.TaintEffectNoSchedule}}
			}), running("low", 1, "1"))},
			inst: high,
		},
		{
			name: "a taint rules one node out, the other is preempted",
			nodes: []*NodeInfo{
				bound(node("a", "1", "4Gi", func(n *skiffv1alpha1.Node) { n.Status.Conditions = nil }), running("a-0", 0, "1")),
				bound(node("b", "1", "4Gi"), running("b-0", 5, "1")),
			},
			inst: high, wantNode: "b", wantVictims: []string{"b-0"},
		},
		{
			name: "instance slots",
			nodes: []*NodeInfo{bound(node("a", "4", "4Gi", func(n *skiffv1alpha1.Node) {
				n.Status.Allocatable[corev1.ResourcePods] = resource.MustParse("1")
			}), running("low", 1, ""))},
			inst: running("high", 10, ""), wantNode: "a", wantVictims: []string{"low"},
		},
		{
			name: "anti-affinity: evict the blocker where it runs",
			nodes: []*NodeInfo{
				bound(node("a1", "4", "4Gi", zone("a")), running("web-0", 1, "")),
				bound(node("a2", "4", "4Gi", zone("a"))),
			},
			inst: running("api", 10, "", antiWeb("zone")), wantNode: "a1", wantVictims: []string{"web-0"},
		},
		{
			name: "anti-affinity: a higher-priority blocker stays",
			nodes: []*NodeInfo{
				bound(node("a1", "4", "4Gi"), running("web-0", 20, "")),
			},
			inst: running("api", 10, "", antiWeb("name")),
		},
		{
			name:  "instances already leaving are not victims again",
			nodes: []*NodeInfo{bound(node("a", "1", "4Gi"), running("going", 1, "500m", deleting), running("gone", 1, "500m", preempted))},
			inst:  high,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if res := New(Spread).Schedule(tc.inst, tc.nodes); res.Node != "" {
				t.Fatalf("the preemptor fits on %s without preempting: a bad case", res.Node)
			}
			p := New(Spread).Preempt(tc.inst, tc.nodes)
			var victims []string
			for _, v := range p.Victims {
				victims = append(victims, v.Name)
				if Priority(v) >= Priority(tc.inst) {
					t.Errorf("victim %s has priority %d, not below the preemptor's %d", v.Name, Priority(v), Priority(tc.inst))
				}
			}
			if p.Node != tc.wantNode || !slices.Equal(victims, tc.wantVictims) {
				t.Errorf("preempt on %q victims %v, want %q %v", p.Node, victims, tc.wantNode, tc.wantVictims)
			}
		})
	}
}

// TestPreemptedRoomFits: once the chosen victims are gone, the preemptor
// fits on the node.
func TestPreemptedRoomFits(t *testing.T) {
	nodes := []*NodeInfo{bound(node("a", "2", "4Gi"), running("p1", 1, "1"), running("p2", 2, "600m"), running("p3", 3, "400m"))}
	inst := running("high", 10, "1500m")
	p := New(Spread).Preempt(inst, nodes)
	var left []*skiffv1alpha1.Instance
	for _, placed := range nodes[0].Instances {
		if !slices.Contains(p.Victims, placed) {
			left = append(left, placed)
		}
	}
	after := []*NodeInfo{NewNodeInfo(nodes[0].Node, left...)}
	if res := New(Spread).Schedule(inst, after); res.Node != "a" {
		t.Errorf("after evicting %d victims: %s", len(p.Victims), res.Message(1))
	}
	if len(p.Victims) != 2 || p.Victims[0].Name != "p1" || p.Victims[1].Name != "p2" {
		t.Errorf("victims %v, want p1 and p2: p3 matters most and stays, 1.5 cpu must be free", p.Victims)
	}
}

// TestReserve: room nominated for a pending Instance is not free to one of
// equal or lower priority, but is to one that outranks it and to the
// nominee itself.
func TestReserve(t *testing.T) {
	nominee := instance("nominee", "800m", "", prio(10), func(i *skiffv1alpha1.Instance) { i.Status.NominatedNodeName = "a" })
	nodes := []*NodeInfo{NewNodeInfo(node("a", "1", "4Gi"))}
	for _, tc := range []struct {
		inst *skiffv1alpha1.Instance
		fits bool
	}{
		{instance("lower", "500m", "", prio(1)), false},
		{instance("equal", "500m", "", prio(10)), false},
		{instance("higher", "500m", "", prio(11)), true},
		{nominee, true},
	} {
		all := []*skiffv1alpha1.Instance{nominee, tc.inst}
		if got := New(Spread).Schedule(tc.inst, Reserve(tc.inst, nodes, all)).Node != ""; got != tc.fits {
			t.Errorf("%s fits %v, want %v", tc.inst.Name, got, tc.fits)
		}
	}
	if len(nodes[0].Instances) != 0 {
		t.Errorf("Reserve changed its input: %d instances on a", len(nodes[0].Instances))
	}
	// The nominee bound (assumed) already: counted once, not twice.
	assumed := nominee.DeepCopy()
	assumed.Spec.NodeName = "a"
	onA := []*NodeInfo{NewNodeInfo(node("a", "2", "4Gi"), assumed)}
	if got := len(Reserve(instance("x", "", ""), onA, []*skiffv1alpha1.Instance{nominee})[0].Instances); got != 1 {
		t.Errorf("assumed nominee placed %d times, want once", got)
	}
}

// TestNominatedNodeFirst: an Instance goes to the node it preempted on when
// it fits there, though another node would score higher.
func TestNominatedNodeFirst(t *testing.T) {
	busy := NewNodeInfo(node("busy", "4", "8Gi"), instance("p", "3", "6Gi"))
	idle := NewNodeInfo(node("idle", "4", "8Gi"))
	inst := instance("i", "500m", "512Mi", func(i *skiffv1alpha1.Instance) { i.Status.NominatedNodeName = "busy" })
	if got := New(Spread).Schedule(inst, []*NodeInfo{busy, idle}).Node; got != "busy" {
		t.Errorf("chose %q, want the nominated node", got)
	}
	inst.Status.NominatedNodeName = "gone"
	if got := New(Spread).Schedule(inst, []*NodeInfo{busy, idle}).Node; got != "idle" {
		t.Errorf("with a nominated node that no longer exists: chose %q, want the best node", got)
	}
}

// TestVictimsLeft: a preemptor waits while its preempted victims are still
// on its nominated node, and only those.
func TestVictimsLeft(t *testing.T) {
	victim := running("victim", 1, "1", func(i *skiffv1alpha1.Instance) {
		i.Status.Phase, i.Status.Reason = skiffv1alpha1.InstanceFailed, skiffv1alpha1.ReasonPreempted
	})
	nodes := []*NodeInfo{bound(node("a", "1", "4Gi"), victim, running("other", 1, "")), bound(node("b", "1", "4Gi"))}
	inst := running("high", 10, "1", func(i *skiffv1alpha1.Instance) { i.Status.NominatedNodeName = "a" })
	if left := VictimsLeft(inst, nodes); len(left) != 1 || left[0] != victim {
		t.Errorf("victims left %v, want the preempted one", left)
	}
	if res := New(Spread).Schedule(inst, nodes); res.Node != "b" {
		t.Errorf("the preempted victim does not hold its cpu until deleted: %+v", res)
	}
	inst.Status.NominatedNodeName = "b"
	if left := VictimsLeft(inst, nodes); len(left) != 0 {
		t.Errorf("victims left on another node count: %v", left)
	}
}

func TestFailures(t *testing.T) {
	var nodes []*NodeInfo
	for i := 25; i > 0; i-- {
		nodes = append(nodes, NewNodeInfo(node(fmt.Sprintf("n%02d", i), "1", "4Gi")))
	}
	nodes = append(nodes, NewNodeInfo(node("down", "8", "4Gi", func(n *skiffv1alpha1.Node) { n.Status.Conditions = nil })))
	got := New(Spread).Schedule(instance("i", "2", ""), nodes).Failures()
	if len(got) != skiffv1alpha1.MaxSchedulingFailures {
		t.Fatalf("%d failures, want the first %d", len(got), skiffv1alpha1.MaxSchedulingFailures)
	}
	want0 := skiffv1alpha1.NodeSchedulingFailure{Node: "down", Reason: "not ready"}
	want19 := skiffv1alpha1.NodeSchedulingFailure{Node: "n19", Reason: "insufficient cpu"}
	if got[0] != want0 || got[19] != want19 {
		t.Errorf("failures %v: want sorted by node from %v to %v", got, want0, want19)
	}
}
