package network_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"skiff.dev/skiff/nodeagent/network"
	"skiff.dev/skiff/nodeagent/network/nettest"
)

var cluster = netip.MustParsePrefix("10.244.0.0/16")

// node is a host namespace with a network manager on a subnet.
func node(t *testing.T, host, subnet string) *network.Manager {
	t.Helper()
	m, err := network.New(network.Config{
		PluginDir: network.DefaultPluginDir, DataDir: t.TempDir(), ClusterCIDR: cluster, HostNetNS: host,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetSubnet(netip.MustParsePrefix(subnet)); err != nil {
		t.Fatal(err)
	}
	return m
}

func setup(t *testing.T, m *network.Manager, id string, ports ...network.Port) network.Attachment {
	t.Helper()
	att, err := m.Setup(context.Background(), id, ports)
	if err != nil {
		t.Fatalf("setup %s: %v", id, err)
	}
	t.Cleanup(func() {
		if err := m.Teardown(context.Background(), id); err != nil {
			t.Error(err)
		}
	})
	return att
}

func TestInstancesOnOneNode(t *testing.T) {
	nettest.Skip(t)
	host := nettest.Host(t, "one")
	m := node(t, host, "10.244.1.0/24")
	a := setup(t, m, "a", network.Port{HostPort: 8080, ContainerPort: 80, Protocol: "TCP"})
	b := setup(t, m, "b")
	if !netip.MustParsePrefix("10.244.1.0/24").Contains(a.IP) || a.IP == b.IP {
		t.Fatalf("addresses %s and %s: want two in 10.244.1.0/24", a.IP, b.IP)
	}
	// Another Instance asking for a's hostPort waits for it; on another
	// protocol or after a is gone it gets it.
	_, err := m.Setup(context.Background(), "c", []network.Port{{HostPort: 8080, ContainerPort: 80, Protocol: "TCP", HostIP: "127.0.0.1"}})
	if conflict := new(network.PortConflictError); !errors.As(err, &conflict) || conflict.Holder != "a" {
		t.Fatalf("a second Instance on hostPort 8080/TCP: %v, want a conflict with a", err)
	}
	setup(t, m, "udp", network.Port{HostPort: 8080, ContainerPort: 80, Protocol: "UDP"})
	if again := setup(t, m, "a"); again != a {
		t.Fatalf("a second setup gave %+v, want the first %+v", again, a)
	}
	nettest.Serve(t, a.NetNS, ":80", "from a")
	nettest.Serve(t, b.NetNS, ":80", "from b")
	// From the node, by address.
	nettest.Eventually(t, host, fmt.Sprintf("http://%s/", a.IP), "from a")
	// Instance to instance.
	nettest.Eventually(t, b.NetNS, fmt.Sprintf("http://%s/", a.IP), "from a")
	nettest.Eventually(t, a.NetNS, fmt.Sprintf("http://%s/", b.IP), "from b")
	// Loopback inside an Instance.
	nettest.Eventually(t, a.NetNS, "http://127.0.0.1:80/", "from a")
	// The hostPort, on the node's loopback and from another Instance
	// through the node's bridge address (hairpin).
	nettest.Eventually(t, host, "http://127.0.0.1:8080/", "from a")
	gw := nettest.Addr(t, host, network.DefaultBridge)
	nettest.Eventually(t, b.NetNS, fmt.Sprintf("http://%s:8080/", gw), "from a")

	if err := m.Teardown(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := nettest.Get(host, "http://127.0.0.1:8080/"); err == nil {
		t.Fatal("the hostPort still answers after teardown")
	}
	if rules := nettest.Run(t, host, "iptables-save", "-t", "nat"); strings.Contains(rules, a.IP.String()+":80") {
		t.Fatalf("a's port mapping to %s:80 is still in the node's rules:\n%s", a.IP, rules)
	}
	setup(t, m, "c", network.Port{HostPort: 8080, ContainerPort: 80, Protocol: "TCP"})
	if _, err := os.Stat(a.NetNS); !os.IsNotExist(err) {
		t.Fatalf("namespace %s still there: %v", a.NetNS, err)
	}
	if err := m.Teardown(context.Background(), "a"); err != nil {
		t.Fatalf("a second teardown: %v", err)
	}
}

func TestInstancesOnTwoNodes(t *testing.T) {
	nettest.Skip(t)
	hostA, hostB := nettest.Host(t, "a"), nettest.Host(t, "b")
	nettest.Link(t, hostA, hostB, "10.250.0.1/24", "10.250.0.2/24")
	ma, mb := node(t, hostA, "10.244.1.0/24"), node(t, hostB, "10.244.2.0/24")
	peers := []network.Peer{
		{Name: "a", Subnet: netip.MustParsePrefix("10.244.1.0/24"), Address: netip.MustParseAddr("10.250.0.1")},
		{Name: "b", Subnet: netip.MustParsePrefix("10.244.2.0/24"), Address: netip.MustParseAddr("10.250.0.2")},
	}
	for _, m := range []*network.Manager{ma, mb} {
		if err := m.SetPeers(peers); err != nil {
			t.Fatal(err)
		}
	}
	a, b := setup(t, ma, "a"), setup(t, mb, "b")
	nettest.Serve(t, a.NetNS, ":80", "from a")
	nettest.Serve(t, b.NetNS, ":80", "from b")
	nettest.Eventually(t, a.NetNS, fmt.Sprintf("http://%s/", b.IP), "from b")
	nettest.Eventually(t, b.NetNS, fmt.Sprintf("http://%s/", a.IP), "from a")
	// Within the cluster an Instance sees the other's own address: no
	// masquerading between nodes.
	nettest.ServeRemoteAddr(t, b.NetNS, ":81")
	nettest.Eventually(t, a.NetNS, fmt.Sprintf("http://%s:81/", b.IP), a.IP.String()+":")
	// Leaving the cluster CIDR (node b's own address is outside it), an
	// Instance's traffic is masqueraded to its node's address.
	nettest.ServeRemoteAddr(t, hostB, "10.250.0.2:82")
	nettest.Eventually(t, a.NetNS, "http://10.250.0.2:82/", "10.250.0.1:")
	routes, err := ma.Routes()
	if err != nil || len(routes) != 1 || routes[peers[1].Subnet] != peers[1].Address {
		t.Fatalf("node a's routes %v (%v), want only %s via %s", routes, err, peers[1].Subnet, peers[1].Address)
	}
	// A subnet outside the cluster CIDR, or one the node already routes
	// otherwise, is not touched.
	nettest.Run(t, hostA, "ip", "route", "add", "10.244.9.0/24", "via", "10.250.0.2")
	odd := append(slices.Clone(peers),
		network.Peer{Name: "outside", Subnet: netip.MustParsePrefix("192.168.7.0/24"), Address: netip.MustParseAddr("10.250.0.2")},
		network.Peer{Name: "taken", Subnet: netip.MustParsePrefix("10.244.9.0/24"), Address: netip.MustParseAddr("10.250.0.3")})
	if err := ma.SetPeers(odd); err == nil || !strings.Contains(err.Error(), "outside --cluster-cidr") || !strings.Contains(err.Error(), "already routes it") {
		t.Errorf("SetPeers with odd subnets: %v, want both refused", err)
	}
	if got := nettest.Run(t, hostA, "ip", "route", "show", "10.244.9.0/24"); !strings.Contains(got, "via 10.250.0.2") {
		t.Errorf("the node's own route to 10.244.9.0/24 was changed: %q", got)
	}
	if got := nettest.Run(t, hostA, "ip", "route", "show", "192.168.7.0/24"); strings.TrimSpace(got) != "" {
		t.Errorf("a subnet outside the cluster CIDR was routed: %q", got)
	}
	// A node that goes loses its route.
	if err := ma.SetPeers(peers[:1]); err != nil {
		t.Fatal(err)
	}
	if routes, err := ma.Routes(); err != nil || len(routes) != 0 {
		t.Fatalf("routes after node b went: %v, %v", routes, err)
	}
	if _, err := nettest.Get(a.NetNS, fmt.Sprintf("http://%s/", b.IP)); err == nil {
		t.Fatal("node b's instance still reachable without a route")
	}
}

// TestNoLeaks sets up and tears down 100 Instances and counts what the
// node holds: addresses, rules, namespaces, veths and cache files.
func TestNoLeaks(t *testing.T) {
	nettest.Skip(t)
	host := nettest.Host(t, "leak")
	dataDir := t.TempDir()
	m, err := network.New(network.Config{PluginDir: network.DefaultPluginDir, DataDir: dataDir, ClusterCIDR: cluster, HostNetNS: host})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetSubnet(netip.MustParsePrefix("10.244.7.0/24")); err != nil {
		t.Fatal(err)
	}
	// One Instance first, so that the bridge and the plugins' chains exist
	// before counting.
	setup(t, m, "warm", network.Port{HostPort: 9000, ContainerPort: 80, Protocol: "TCP"})
	if err := m.Teardown(context.Background(), "warm"); err != nil {
		t.Fatal(err)
	}
	before := census(t, host, dataDir)
	for i := range 100 {
		id := fmt.Sprintf("i%d", i)
		// Every fourth publishes a port: portmap's rules must go too.
		var ports []network.Port
		if i%4 == 0 {
			ports = []network.Port{{HostPort: int32(9000 + i%3), ContainerPort: 80, Protocol: []string{"TCP", "UDP"}[i%8/4]}}
		}
		if _, err := m.Setup(context.Background(), id, ports); err != nil {
			t.Fatal(err)
		}
		if err := m.Teardown(context.Background(), id); err != nil {
			t.Fatal(err)
		}
	}
	if after := census(t, host, dataDir); after != before {
		t.Fatalf("after 100 cycles the node holds\n%s\nwant as before\n%s", after, before)
	}
}

// census counts what Instances leave on a node.
func census(t *testing.T, host, dataDir string) string {
	t.Helper()
	count := func(dir string) int {
		n := 0
		filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				n++
			}
			return nil
		})
		return n
	}
	rules := 0
	for _, line := range strings.Split(nettest.Run(t, host, "iptables-save"), "\n") {
		if strings.HasPrefix(line, "-A ") || strings.HasPrefix(line, ":") {
			rules++
		}
	}
	veths := strings.Count(nettest.Run(t, host, "ip", "-o", "link", "show", "type", "veth"), "\n")
	addrs := strings.Count(nettest.Run(t, host, "ip", "-o", "-4", "addr"), "\n")
	return fmt.Sprintf("ipam files %d, cache files %d, namespaces %d, iptables rules and chains %d, veths %d, addresses %d",
		count(filepath.Join(dataDir, "ipam")), count(filepath.Join(dataDir, "cache")), count(filepath.Join(dataDir, "netns")), rules, veths, addrs)
}

// TestRestart: a new manager on the same data (an agent restart) finds the
// Instances' networks in the plugins' cache, before it knows the node's
// subnet, and the ports they publish.
func TestRestart(t *testing.T) {
	nettest.Skip(t)
	cfg := network.Config{PluginDir: network.DefaultPluginDir, DataDir: t.TempDir(), ClusterCIDR: cluster, HostNetNS: nettest.Host(t, "restart")}
	first, err := network.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.SetSubnet(netip.MustParsePrefix("10.244.3.0/24")); err != nil {
		t.Fatal(err)
	}
	port := network.Port{HostPort: 8080, ContainerPort: 80, Protocol: "TCP"}
	a, err := first.Setup(context.Background(), "a", []network.Port{port})
	if err != nil {
		t.Fatal(err)
	}
	second, err := network.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if again := setup(t, second, "a", port); again != a {
		t.Fatalf("after a restart a has %+v, want %+v", again, a)
	}
	if err := second.SetSubnet(netip.MustParsePrefix("10.244.3.0/24")); err != nil {
		t.Fatal(err)
	}
	if _, err := second.Setup(context.Background(), "b", []network.Port{port}); !errors.As(err, new(*network.PortConflictError)) {
		t.Fatalf("b on a's port after a restart: %v, want a conflict", err)
	}

	// A reboot: the pinned namespace is gone, its file stays. The next
	// agent makes the network again, and it works.
	if err := unix.Unmount(a.NetNS, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	third, err := network.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := third.SetSubnet(netip.MustParsePrefix("10.244.3.0/24")); err != nil {
		t.Fatal(err)
	}
	again := setup(t, third, "a", port)
	nettest.Serve(t, again.NetNS, ":80", "after the reboot")
	nettest.Eventually(t, cfg.HostNetNS, "http://127.0.0.1:8080/", "after the reboot")
}
