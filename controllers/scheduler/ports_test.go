package scheduler

import (
	"fmt"
	"slices"
	"testing"
	"time"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// publish makes the Instance's container publish a host port; ip and
// protocol may be empty (every address, TCP).
func publish(port int32, protocol skiffv1alpha1.Protocol, ip string) func(*skiffv1alpha1.Instance) {
	return func(i *skiffv1alpha1.Instance) {
		c := &i.Spec.Containers[0]
		c.Ports = append(c.Ports, skiffv1alpha1.ContainerPort{ContainerPort: 8000 + int32(len(c.Ports)), HostPort: port, Protocol: protocol, HostIP: ip})
	}
}

func TestNodePortsFilter(t *testing.T) {
	tcp, udp := skiffv1alpha1.ProtocolTCP, skiffv1alpha1.ProtocolUDP
	for _, tc := range []struct {
		name   string
		placed []func(*skiffv1alpha1.Instance)
		asks   []func(*skiffv1alpha1.Instance)
		free   bool
	}{
		{"same port and protocol", list(publish(80, tcp, "")), list(publish(80, tcp, "")), false},
		{"unset protocol is TCP", list(publish(80, "", "")), list(publish(80, tcp, "")), false},
		{"different protocol", list(publish(53, tcp, "")), list(publish(53, udp, "")), true},
		{"different port", list(publish(80, tcp, "")), list(publish(81, tcp, "")), true},
		{"different specific addresses", list(publish(80, tcp, "10.0.0.1")), list(publish(80, tcp, "10.0.0.2")), true},
		{"same specific address", list(publish(80, tcp, "10.0.0.1")), list(publish(80, tcp, "10.0.0.1")), false},
		{"every address taken, one asked", list(publish(80, tcp, "")), list(publish(80, tcp, "127.0.0.1")), false},
		{"one address taken, every one asked", list(publish(80, tcp, "127.0.0.1")), list(publish(80, tcp, "")), false},
		{"0.0.0.0 is every address", list(publish(80, tcp, "0.0.0.0")), list(publish(80, tcp, "10.0.0.2")), false},
		{"a second port of the asker conflicts", list(publish(80, tcp, "")), list(publish(443, tcp, ""), publish(80, tcp, "")), false},
		{"a container port alone publishes nothing", list(publish(80, tcp, "")), list(func(i *skiffv1alpha1.Instance) {
			i.Spec.Containers[0].Ports = []skiffv1alpha1.ContainerPort{{ContainerPort: 80, Protocol: tcp}}
		}), true},
		{"nothing published on the node", nil, list(publish(80, tcp, "")), true},
		{"a port in another container of the placed Instance", list(func(i *skiffv1alpha1.Instance) {
			i.Spec.Containers = append(i.Spec.Containers, skiffv1alpha1.Container{Name: "side", Ports: []skiffv1alpha1.ContainerPort{{ContainerPort: 9, HostPort: 9, Protocol: udp}}})
		}), list(publish(9, udp, "")), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := NewNodeInfo(node("a", "4", "8Gi"), instance("placed", "", "", tc.placed...))
			res := New(Spread).Schedule(instance("asks", "", "", tc.asks...), []*NodeInfo{n})
			if got := res.Node != ""; got != tc.free {
				t.Errorf("fits %v (reason %q), want %v", got, res.PerNode["a"], tc.free)
			}
			if !tc.free && res.PerNode["a"] != ReasonPortsTaken {
				t.Errorf("reason %q, want %q", res.PerNode["a"], ReasonPortsTaken)
			}
		})
	}
}

func list(fs ...func(*skiffv1alpha1.Instance)) []func(*skiffv1alpha1.Instance) { return fs }

// TestNodePortsSnapshot: an assumed Instance holds its ports before the
// informer shows it bound; a finished one holds none, a preempted one
// holds them until it is deleted.
func TestNodePortsSnapshot(t *testing.T) {
	nodes := []*skiffv1alpha1.Node{node("a", "4", "8Gi")}
	web := func(name, uid string, mutate ...func(*skiffv1alpha1.Instance)) *skiffv1alpha1.Instance {
		return withUID(instance(name, "", "", append(list(publish(8080, "", "")), mutate...)...), uid)
	}
	s := New(Spread)

	c := NewCache(30 * time.Second)
	first, second := web("first", "1"), web("second", "2")
	c.Assume(first, "a")
	if res := s.Schedule(second, c.Snapshot(nodes, []*skiffv1alpha1.Instance{first, second})); res.Node != "" {
		t.Errorf("second placed on %s beside the assumed first, which holds 8080", res.Node)
	}

	onA := func(i *skiffv1alpha1.Instance) { i.Spec.NodeName = "a" }
	for _, tc := range []struct {
		phase  skiffv1alpha1.InstancePhase
		reason string
		holds  bool
	}{
		{skiffv1alpha1.InstanceRunning, "", true},
		{skiffv1alpha1.InstanceSucceeded, "", false},
		{skiffv1alpha1.InstanceFailed, "Error", false},
		{skiffv1alpha1.InstanceFailed, skiffv1alpha1.ReasonPreempted, true},
	} {
		placed := web("placed", "3", onA, func(i *skiffv1alpha1.Instance) { i.Status.Phase, i.Status.Reason = tc.phase, tc.reason })
		asks := web("asks", "4")
		res := s.Schedule(asks, NewCache(time.Minute).Snapshot(nodes, []*skiffv1alpha1.Instance{placed, asks}))
		if held := res.Node == ""; held != tc.holds {
			t.Errorf("%s %s Instance holds its port: %v, want %v", tc.phase, tc.reason, held, tc.holds)
		}
	}
}

func TestNodePortsMessage(t *testing.T) {
	var nodes []*NodeInfo
	for i := range 3 {
		nodes = append(nodes, NewNodeInfo(node(fmt.Sprintf("n%d", i), "4", "8Gi"), instance("web", "", "", publish(80, "", ""))))
	}
	res := New(Spread).Schedule(instance("i", "", "", publish(80, "", "")), nodes)
	want := "0/3 nodes are available: 3 node(s) didn't have free ports for the requested instance ports."
	if got := res.Message(len(nodes)); got != want || res.Node != "" {
		t.Errorf("message %q (node %q), want %q", got, res.Node, want)
	}
	if f := res.Failures(); len(f) != 3 || f[0] != (skiffv1alpha1.NodeSchedulingFailure{Node: "n0", Reason: ReasonPortsTaken}) {
		t.Errorf("failures %v, want each node with %q", f, ReasonPortsTaken)
	}
}

// TestPreemptForPorts: a lower-priority Instance holding the port is
// evicted for it, and no other; a higher-priority one is not.
func TestPreemptForPorts(t *testing.T) {
	port := publish(80, "", "")
	for _, tc := range []struct {
		name        string
		nodes       []*NodeInfo
		wantNode    string
		wantVictims []string
	}{
		{
			name:     "only the holder of the port goes",
			nodes:    []*NodeInfo{bound(node("a", "4", "8Gi"), running("holder", 1, "", port), running("bystander", 1, "1"))},
			wantNode: "a", wantVictims: []string{"holder"},
		},
		{
			name: "where the holder matters least",
			nodes: []*NodeInfo{
				bound(node("a", "4", "8Gi"), running("a-holder", 5, "", port)),
				bound(node("b", "4", "8Gi"), running("b-holder", 1, "", port)),
			},
			wantNode: "b", wantVictims: []string{"b-holder"},
		},
		{
			name:  "a higher-priority holder stays",
			nodes: []*NodeInfo{bound(node("a", "4", "8Gi"), running("boss", 20, "", port), running("low", 1, "1"))},
		},
		{
			name: "room and port both needed",
			nodes: []*NodeInfo{bound(node("a", "1", "8Gi"),
				running("holder", 1, "", publish(80, "", "10.0.0.1")), running("big", 1, "1"), running("other-port", 1, "", publish(81, "", "")))},
			wantNode: "a", wantVictims: []string{"big", "holder"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inst := running("high", 10, "500m", port)
			if res := New(Spread).Schedule(inst, tc.nodes); res.Node != "" {
				t.Fatalf("fits on %s without preempting: a bad case", res.Node)
			}
			p := New(Spread).Preempt(inst, tc.nodes)
			var victims []string
			for _, v := range p.Victims {
				victims = append(victims, v.Name)
			}
			if p.Node != tc.wantNode || !slices.Equal(victims, tc.wantVictims) {
				t.Errorf("preempt on %q victims %v, want %q %v", p.Node, victims, tc.wantNode, tc.wantVictims)
			}
		})
	}
}
