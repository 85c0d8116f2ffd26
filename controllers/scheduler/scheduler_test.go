package scheduler

import (
	"fmt"
	"math/rand/v2"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// node is a Ready node with cpu, memory and instance slots.
func node(name, cpu, memory string, mutate ...func(*skiffv1alpha1.Node)) *skiffv1alpha1.Node {
	n := &skiffv1alpha1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"name": name}}}
	n.Status.Allocatable = corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(memory), corev1.ResourcePods: resource.MustParse("110"),
	}
	n.Status.Conditions = []metav1.Condition{{Type: skiffv1alpha1.NodeConditionReady, Status: metav1.ConditionTrue}}
	for _, m := range mutate {
		m(n)
	}
	return n
}

func instance(name, cpu, memory string, mutate ...func(*skiffv1alpha1.Instance)) *skiffv1alpha1.Instance {
	inst := &skiffv1alpha1.Instance{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": "web"}}}
	c := skiffv1alpha1.Container{Name: "main", Image: "web:1", Resources: skiffv1alpha1.ResourceRequirements{Requests: corev1.ResourceList{}}}
	if cpu != "" {
		c.Resources.Requests[corev1.ResourceCPU] = resource.MustParse(cpu)
	}
	if memory != "" {
		c.Resources.Requests[corev1.ResourceMemory] = resource.MustParse(memory)
	}
	inst.Spec.Containers = []skiffv1alpha1.Container{c}
	for _, m := range mutate {
		m(inst)
	}
	return inst
}

func infos(nodes ...*skiffv1alpha1.Node) []*NodeInfo {
	out := make([]*NodeInfo, len(nodes))
	for i, n := range nodes {
		out[i] = NewNodeInfo(n)
	}
	return out
}

func TestFilters(t *testing.T) {
	label := func(k, v string) func(*skiffv1alpha1.Node) { return func(n *skiffv1alpha1.Node) { n.Labels[k] = v } }
	taint := func(k, v string, e skiffv1alpha1.TaintEffect) func(*skiffv1alpha1.Node) {
		return func(n *skiffv1alpha1.Node) {
			n.Spec.Taints = append(n.Spec.Taints, skiffv1alpha1.Taint{Key: k, Value: v, Effect: e})
		}
	}
	for _, tc := range []struct {
		name string
		node *skiffv1alpha1.Node
		inst *skiffv1alpha1.Instance
		want string
	}{
		{"fits", node("a", "2", "4Gi"), instance("i", "1", "1Gi"), ""},
		{"not ready", node("a", "2", "4Gi", func(n *skiffv1alpha1.Node) { n.Status.Conditions = nil }), instance("i", "", ""), "not ready"},
		{"cordoned", node("a", "2", "4Gi", func(n *skiffv1alpha1.Node) { n.Spec.Unschedulable = true }), instance("i", "", ""), "unschedulable"},
		{"node selector", node("a", "2", "4Gi"), instance("i", "", "", func(i *skiffv1alpha1.Instance) { i.Spec.NodeSelector = map[string]string{"disk": "ssd"} }), "didn't match node selector"},
		{"node selector matches", node("a", "2", "4Gi", label("disk", "ssd")), instance("i", "", "", func(i *skiffv1alpha1.Instance) { i.Spec.NodeSelector = map[string]string{"disk": "ssd"} }), ""},
		{"required affinity In", node("a", "2", "4Gi", label("zone", "b")), instance("i", "", "", requireZone(skiffv1alpha1.NodeSelectorOpIn, "a")), "didn't match node affinity"},
		{"required affinity NotIn", node("a", "2", "4Gi", label("zone", "b")), instance("i", "", "", requireZone(skiffv1alpha1.NodeSelectorOpNotIn, "a")), ""},
		{"untolerated taint", node("a", "2", "4Gi", taint("dedicated", "gpu", skiffv1alpha1.TaintEffectNoSchedule)), instance("i", "", ""), "untolerated taint {dedicated=gpu}"},
		{"tolerated taint", node("a", "2", "4Gi", taint("dedicated", "gpu", skiffv1alpha1.TaintEffectNoSchedule)), instance("i", "", "", func(i *skiffv1alpha1.Instance) {
			i.Spec.Tolerations = []skiffv1alpha1.Toleration{{Key: "dedicated", Operator: skiffv1alpha1.TolerationOpEqual, Value: "gpu"}}
		}), ""},
		{"exists tolerates any value", node("a", "2", "4Gi", taint("dedicated", "gpu", skiffv1alpha1.TaintEffectNoExecute)), instance("i", "", "", func(i *skiffv1alpha1.Instance) {
			i.Spec.Tolerations = []skiffv1alpha1.Toleration{{Key: "dedicated", Operator: skiffv1alpha1.TolerationOpExists}}
		}), ""},
		{"PreferNoSchedule does not filter", node("a", "2", "4Gi", taint("spot", "", skiffv1alpha1.TaintEffectPreferNoSchedule)), instance("i", "", ""), ""},
		{"insufficient cpu", node("a", "2", "4Gi"), instance("i", "3", ""), "insufficient cpu"},
		{"insufficient memory", node("a", "2", "4Gi"), instance("i", "", "5Gi"), "insufficient memory"},
		{"extended resource missing", node("a", "2", "4Gi"), instance("i", "", "", gpu("1")), "insufficient skiff.dev/gpu"},
		{"extended resource present", node("a", "2", "4Gi", func(n *skiffv1alpha1.Node) { n.Status.Allocatable["skiff.dev/gpu"] = resource.MustParse("2") }), instance("i", "", "", gpu("2")), ""},
		{"no instance slots", node("a", "2", "4Gi", func(n *skiffv1alpha1.Node) { n.Status.Allocatable[corev1.ResourcePods] = resource.MustParse("0") }), instance("i", "", ""), "too many instances"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := New(Spread).Schedule(tc.inst, infos(tc.node))
			if got := res.PerNode[tc.node.Name]; got != tc.want {
				t.Errorf("reason %q, want %q", got, tc.want)
			}
			if (res.Node != "") != (tc.want == "") {
				t.Errorf("chosen %q with reason %q", res.Node, tc.want)
			}
		})
	}
}

func requireZone(op skiffv1alpha1.NodeSelectorOperator, zone string) func(*skiffv1alpha1.Instance) {
	return func(i *skiffv1alpha1.Instance) {
		i.Spec.Affinity = &skiffv1alpha1.Affinity{NodeAffinity: &skiffv1alpha1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &skiffv1alpha1.NodeSelector{NodeSelectorTerms: []skiffv1alpha1.NodeSelectorTerm{{
				MatchExpressions: []skiffv1alpha1.NodeSelectorRequirement{{Key: "zone", Operator: op, Values: []string{zone}}},
			}}},
		}}
	}
}

func gpu(n string) func(*skiffv1alpha1.Instance) {
	return func(i *skiffv1alpha1.Instance) {
		i.Spec.Containers[0].Resources.Requests["skiff.dev/gpu"] = resource.MustParse(n)
	}
}

// TestFitCountsPlacedInstances: what is already on a node counts against it.
func TestFitCountsPlacedInstances(t *testing.T) {
	n := NewNodeInfo(node("a", "2", "4Gi"), instance("placed", "1500m", "1Gi"))
	res := New(Spread).Schedule(instance("i", "1", "1Gi"), []*NodeInfo{n})
	if res.Node != "" || res.PerNode["a"] != "insufficient cpu" {
		t.Errorf("result %+v: want insufficient cpu with 1.5 of 2 cpus placed", res)
	}
}

func TestScoringStrategies(t *testing.T) {
	busy := NewNodeInfo(node("busy", "4", "8Gi"), instance("p", "3", "6Gi"))
	idle := NewNodeInfo(node("idle", "4", "8Gi"))
	inst := instance("i", "500m", "512Mi")
	if got := New(Spread).Schedule(inst, []*NodeInfo{busy, idle}).Node; got != "idle" {
		t.Errorf("spread chose %q, want the idle node", got)
	}
	if got := New(BinPack).Schedule(inst, []*NodeInfo{busy, idle}).Node; got != "busy" {
		t.Errorf("binpack chose %q, want the busy node", got)
	}
}

func TestPreferences(t *testing.T) {
	a := node("a", "4", "8Gi", func(n *skiffv1alpha1.Node) { n.Labels["zone"] = "a" })
	b := node("b", "4", "8Gi", func(n *skiffv1alpha1.Node) { n.Labels["zone"] = "b" })
	inst := instance("i", "", "", func(i *skiffv1alpha1.Instance) {
		i.Spec.Affinity = &skiffv1alpha1.Affinity{NodeAffinity: &skiffv1alpha1.NodeAffinity{
			PreferredDuringSchedulingIgnoredDuringExecution: []skiffv1alpha1.PreferredSchedulingTerm{{Weight: 10, Preference: skiffv1alpha1.NodeSelectorTerm{
				MatchExpressions: []skiffv1alpha1.NodeSelectorRequirement{{Key: "zone", Operator: skiffv1alpha1.NodeSelectorOpIn, Values: []string{"b"}}},
			}}},
		}}
	})
	if got := New(Spread).Schedule(inst, infos(a, b)).Node; got != "b" {
		t.Errorf("preferred affinity: chose %q, want b", got)
	}
	spot := node("spot", "4", "8Gi", func(n *skiffv1alpha1.Node) {
		n.Spec.Taints = []skiffv1alpha1.Taint{{Key: "spot", Effect: skiffv1alpha1.TaintEffectPreferNoSchedule}}
	})
	if got := New(Spread).Schedule(instance("j", "", ""), infos(spot, a)).Node; got != "a" {
		t.Errorf("PreferNoSchedule: chose %q, want the untainted node", got)
	}
}

func TestAntiAffinityAndSpread(t *testing.T) {
	zone := func(z string) func(*skiffv1alpha1.Node) { return func(n *skiffv1alpha1.Node) { n.Labels["zone"] = z } }
	a1 := NewNodeInfo(node("a1", "4", "8Gi", zone("a")), instance("web-0", "", ""))
	a2 := NewNodeInfo(node("a2", "4", "8Gi", zone("a")))
	b1 := NewNodeInfo(node("b1", "4", "8Gi", zone("b")))
	all := []*NodeInfo{a1, a2, b1}
	webSelector := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}

	anti := instance("web-1", "", "", func(i *skiffv1alpha1.Instance) {
		i.Spec.Affinity = &skiffv1alpha1.Affinity{InstanceAntiAffinity: &skiffv1alpha1.InstanceAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []skiffv1alpha1.InstanceAffinityTerm{{LabelSelector: webSelector, TopologyKey: "zone"}},
		}}
	})
	res := New(Spread).Schedule(anti, all)
	if res.Node != "b1" || res.PerNode["a1"] != "instance anti-affinity" || res.PerNode["a2"] != "instance anti-affinity" {
		t.Errorf("anti-affinity per zone: %+v, want only b1", res)
	}

	spread := instance("web-1", "", "", func(i *skiffv1alpha1.Instance) {
		i.Spec.TopologySpreadConstraints = []skiffv1alpha1.TopologySpreadConstraint{{
			MaxSkew: 1, TopologyKey: "zone", WhenUnsatisfiable: skiffv1alpha1.DoNotSchedule, LabelSelector: webSelector,
		}}
	})
	res = New(Spread).Schedule(spread, all)
	if res.Node != "b1" || res.PerNode["a2"] != "topology spread zone" {
		t.Errorf("spread with zone a at 1, b at 0: %+v, want b1", res)
	}
}

func TestNoFitMessage(t *testing.T) {
	var nodes []*NodeInfo
	for i := range 3 {
		nodes = append(nodes, NewNodeInfo(node(fmt.Sprintf("small-%d", i), "1", "4Gi")))
	}
	for i := range 2 {
		nodes = append(nodes, NewNodeInfo(node(fmt.Sprintf("gpu-%d", i), "8", "4Gi", func(n *skiffv1alpha1.Node) {
			n.Spec.Taints = []skiffv1alpha1.Taint{{Key: "dedicated", Value: "gpu", Effect: skiffv1alpha1.TaintEffectNoSchedule}}
		})))
	}
	nodes = append(nodes, NewNodeInfo(node("down", "8", "4Gi", func(n *skiffv1alpha1.Node) { n.Status.Conditions = nil })))
	res := New(Spread).Schedule(instance("i", "2", ""), nodes)
	want := "0/6 nodes are available: 3 insufficient cpu, 2 untolerated taint {dedicated=gpu}, 1 not ready."
	if got := res.Message(len(nodes)); got != want || res.Node != "" {
		t.Errorf("message %q (node %q), want %q", got, res.Node, want)
	}
}

// TestTieBreakIsRandom: equal nodes are all chosen sometimes.
func TestTieBreakIsRandom(t *testing.T) {
	s := New(Spread)
	s.Rand = rand.New(rand.NewPCG(1, 2))
	nodes := infos(node("a", "4", "8Gi"), node("b", "4", "8Gi"), node("c", "4", "8Gi"))
	seen := map[string]bool{}
	for range 100 {
		seen[s.Schedule(instance("i", "", ""), nodes).Node] = true
	}
	if len(seen) != 3 {
		t.Errorf("100 ties went to %v, want all three nodes", seen)
	}
}

func TestPreferredInstanceAffinityAndSpreadAnyway(t *testing.T) {
	zone := func(z string) func(*skiffv1alpha1.Node) { return func(n *skiffv1alpha1.Node) { n.Labels["zone"] = z } }
	withDB := NewNodeInfo(node("a1", "4", "8Gi", zone("a")), instance("db-0", "1", "1Gi", func(i *skiffv1alpha1.Instance) { i.Labels = map[string]string{"app": "db"} }))
	empty := NewNodeInfo(node("b1", "4", "8Gi", zone("b")))
	nodes := []*NodeInfo{withDB, empty}
	term := skiffv1alpha1.WeightedInstanceAffinityTerm{Weight: 50, InstanceAffinityTerm: skiffv1alpha1.InstanceAffinityTerm{
		LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}, TopologyKey: "zone",
	}}
	near := instance("near", "", "", func(i *skiffv1alpha1.Instance) {
		i.Spec.Affinity = &skiffv1alpha1.Affinity{InstanceAffinity: &skiffv1alpha1.InstanceAffinity{
			PreferredDuringSchedulingIgnoredDuringExecution: []skiffv1alpha1.WeightedInstanceAffinityTerm{term},
		}}
	})
	if got := New(Spread).Schedule(near, nodes).Node; got != "a1" {
		t.Errorf("preferred affinity to db: chose %q, want a1 (its zone has db) although b1 is emptier", got)
	}
	away := instance("away", "", "", func(i *skiffv1alpha1.Instance) {
		i.Spec.Affinity = &skiffv1alpha1.Affinity{InstanceAntiAffinity: &skiffv1alpha1.InstanceAffinity{
			PreferredDuringSchedulingIgnoredDuringExecution: []skiffv1alpha1.WeightedInstanceAffinityTerm{term},
		}}
	})
	if got := New(BinPack).Schedule(away, nodes).Node; got != "b1" {
		t.Errorf("preferred anti-affinity to db: chose %q, want b1 although bin-packing favours a1", got)
	}

	web := func(name string) *skiffv1alpha1.Instance { return instance(name, "", "") }
	crowded := NewNodeInfo(node("c1", "4", "8Gi", zone("c")), web("web-0"), web("web-1"))
	quiet := NewNodeInfo(node("d1", "4", "8Gi", zone("d")))
	anyway := instance("web-2", "", "", func(i *skiffv1alpha1.Instance) {
		i.Spec.TopologySpreadConstraints = []skiffv1alpha1.TopologySpreadConstraint{{
			MaxSkew: 1, TopologyKey: "zone", WhenUnsatisfiable: skiffv1alpha1.ScheduleAnyway,
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		}}
	})
	if got := New(BinPack).Schedule(anyway, []*NodeInfo{crowded, quiet}).Node; got != "d1" {
		t.Errorf("ScheduleAnyway spread: chose %q, want the quiet zone", got)
	}
	if got := New(Spread).Schedule(anyway, []*NodeInfo{crowded}).Node; got != "c1" {
		t.Errorf("ScheduleAnyway with one crowded zone: chose %q, want it placed anyway", got)
	}
}
