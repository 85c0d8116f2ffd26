package scheduler

import (
	"fmt"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// The placement rules, end to end: through the apiserver's defaulting
// and validation, the informer cache and the binding subresource.

func noFitMessage(inst *skiffv1alpha1.Instance) string {
	return meta.FindStatusCondition(inst.Status.Conditions, skiffv1alpha1.InstanceScheduled).Message
}

func TestControllerTaints(t *testing.T) {
	c := runScheduler(t)
	taint := func(key, value string, effect skiffv1alpha1.TaintEffect) func(*skiffv1alpha1.Node) {
		return func(n *skiffv1alpha1.Node) {
			n.Spec.Taints = append(n.Spec.Taints, skiffv1alpha1.Taint{Key: key, Value: value, Effect: effect})
		}
	}
	c.addNode(node("gpu", "4", "4Gi", taint("dedicated", "gpu", skiffv1alpha1.TaintEffectNoSchedule)))
	c.addNode(node("draining", "4", "4Gi", taint("maintenance", "", skiffv1alpha1.TaintEffectNoExecute)))
	c.addNode(node("spot", "4", "4Gi", taint("spot", "", skiffv1alpha1.TaintEffectPreferNoSchedule)))
	tolerate := func(key string) func(*skiffv1alpha1.Instance) {
		return func(i *skiffv1alpha1.Instance) {
			i.Spec.Tolerations = append(i.Spec.Tolerations, skiffv1alpha1.Toleration{Key: key, Operator: skiffv1alpha1.TolerationOpExists})
		}
	}
	// plain first: anywhere tolerates every taint, so it may take spot's
	// room when decided before plain.
	c.create(instance("plain", "2", "")) // only spot: PreferNoSchedule filters nothing
	if got := c.boundTo("plain"); got != "spot" {
		t.Errorf("plain bound to %q, want spot, the one node without a hard taint", got)
	}
	c.create(
		instance("trainer", "", "", tolerate("dedicated"), func(i *skiffv1alpha1.Instance) {
			i.Spec.NodeSelector = map[string]string{"name": "gpu"}
		}),
		instance("anywhere", "3", "", tolerate("dedicated"), tolerate("maintenance"), tolerate("spot")),
	)
	if got := c.boundTo("trainer"); got != "gpu" {
		t.Errorf("trainer bound to %q, want gpu, whose taint it tolerates", got)
	}
	if got := c.boundTo("anywhere"); !slices.Contains([]string{"gpu", "draining"}, got) {
		t.Errorf("anywhere bound to %q, want a node with room", got)
	}

	c.create(instance("intolerant", "3", ""))
	inst := c.unschedulable("intolerant")
	want := "0/3 nodes are available: 1 insufficient cpu, 1 untolerated taint {dedicated=gpu}, 1 untolerated taint {maintenance}."
	if got := noFitMessage(inst); got != want {
		t.Errorf("message %q, want %q", got, want)
	}
}

func TestControllerNodeAffinity(t *testing.T) {
	c := runScheduler(t)
	labels := func(kv ...string) func(*skiffv1alpha1.Node) {
		return func(n *skiffv1alpha1.Node) {
			for i := 0; i < len(kv); i += 2 {
				n.Labels[kv[i]] = kv[i+1]
			}
		}
	}
	c.addNode(node("a", "4", "4Gi", labels("zone", "a", "disk", "ssd")))
	c.addNode(node("b", "4", "4Gi", labels("zone", "b")))
	prefer := func(zone string) func(*skiffv1alpha1.Instance) {
		return func(i *skiffv1alpha1.Instance) {
			i.Spec.Affinity = &skiffv1alpha1.Affinity{NodeAffinity: &skiffv1alpha1.NodeAffinity{
				PreferredDuringSchedulingIgnoredDuringExecution: []skiffv1alpha1.PreferredSchedulingTerm{{Weight: 100, Preference: skiffv1alpha1.NodeSelectorTerm{
					MatchExpressions: []skiffv1alpha1.NodeSelectorRequirement{{Key: "zone", Operator: skiffv1alpha1.NodeSelectorOpIn, Values: []string{zone}}},
				}}},
			}}
		}
	}
	c.create(
		instance("in-b", "", "", requireZone(skiffv1alpha1.NodeSelectorOpIn, "b")),
		instance("not-in-a", "", "", requireZone(skiffv1alpha1.NodeSelectorOpNotIn, "a")),
		instance("prefers-a", "", "", prefer("a")),
		instance("ssd", "", "", func(i *skiffv1alpha1.Instance) { i.Spec.NodeSelector = map[string]string{"disk": "ssd"} }),
		instance("in-c", "", "", requireZone(skiffv1alpha1.NodeSelectorOpIn, "c")),
	)
	for name, want := range map[string]string{"in-b": "b", "not-in-a": "b", "prefers-a": "a", "ssd": "a"} {
		if got := c.boundTo(name); got != want {
			t.Errorf("%s bound to %q, want %q", name, got, want)
		}
	}
	inst := c.unschedulable("in-c")
	if got, want := noFitMessage(inst), "0/2 nodes are available: 2 didn't match node affinity."; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
}

// TestControllerTopologySpread: Instances created together spread across
// labelled zones within maxSkew, counting the ones just bound (assumed)
// before the informer shows them; a node without the zone label is no
// domain and takes none.
func TestControllerTopologySpread(t *testing.T) {
	c := runScheduler(t)
	zone := func(z string) func(*skiffv1alpha1.Node) { return func(n *skiffv1alpha1.Node) { n.Labels["zone"] = z } }
	c.addNode(node("a1", "4", "4Gi", zone("a")))
	c.addNode(node("a2", "4", "4Gi", zone("a")))
	c.addNode(node("b1", "4", "4Gi", zone("b")))
	c.addNode(node("nozone", "4", "4Gi"))
	spread := func(i *skiffv1alpha1.Instance) {
		i.Spec.TopologySpreadConstraints = []skiffv1alpha1.TopologySpreadConstraint{{
			MaxSkew: 1, TopologyKey: "zone", WhenUnsatisfiable: skiffv1alpha1.DoNotSchedule,
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		}}
	}
	perZone := map[string]int{}
	var names []string
	for i := range 6 {
		names = append(names, fmt.Sprintf("web-%d", i))
		c.create(instance(names[i], "", "", spread))
	}
	for _, name := range names {
		switch node := c.boundTo(name); node {
		case "a1", "a2":
			perZone["a"]++
		case "b1":
			perZone["b"]++
		default:
			t.Errorf("%s bound to %q, outside the zones", name, node)
		}
	}
	if perZone["a"] != 3 || perZone["b"] != 3 {
		t.Errorf("per zone %v, want 3 and 3", perZone)
	}
}

// TestControllerHostPorts: two Instances asking for the same host port
// never share a node; the second waits, saying why, until another node
// comes; one asking for the port over UDP is no conflict.
func TestControllerHostPorts(t *testing.T) {
	c := runScheduler(t)
	c.addNode(node("n1", "4", "4Gi"))
	c.create(instance("web-0", "", "", publish(8080, "", "")), instance("web-1", "", "", publish(8080, "", "")))
	eventually(t, "one of web-0 and web-1 bound, the other unschedulable", func() bool {
		a, b := c.get("web-0"), c.get("web-1")
		return (a.Spec.NodeName == "") != (b.Spec.NodeName == "") &&
			meta.IsStatusConditionFalse(a.Status.Conditions, skiffv1alpha1.InstanceScheduled) != meta.IsStatusConditionFalse(b.Status.Conditions, skiffv1alpha1.InstanceScheduled)
	})
	waiting := "web-1"
	if c.get("web-0").Spec.NodeName == "" {
		waiting = "web-0"
	}
	inst := c.get(waiting)
	want := "0/1 nodes are available: 1 node(s) didn't have free ports for the requested instance ports."
	if got := noFitMessage(inst); got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	wantFailures := []skiffv1alpha1.NodeSchedulingFailure{{Node: "n1", Reason: ReasonPortsTaken}}
	if !slices.Equal(inst.Status.SchedulingFailures, wantFailures) {
		t.Errorf("scheduling failures %v, want %v", inst.Status.SchedulingFailures, wantFailures)
	}

	c.create(instance("dns", "", "", publish(8080, skiffv1alpha1.ProtocolUDP, "")))
	if got := c.boundTo("dns"); got != "n1" {
		t.Errorf("dns bound to %q, want n1: 8080/UDP is free there", got)
	}

	c.addNode(node("n2", "4", "4Gi"))
	if got := c.boundTo(waiting); got != "n2" {
		t.Errorf("%s bound to %q, want n2, the node where 8080/TCP is free", waiting, got)
	}
}
