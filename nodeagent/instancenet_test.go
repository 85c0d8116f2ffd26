package nodeagent

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/nodeagent/network/nettest"
)

// webServer makes the Instance's first container serve its host name on
// port 8080 with busybox httpd, as root.
func (c *ociCluster) webServer(port int32, hostPort int32) func(*skiffv1alpha1.Instance) {
	return func(inst *skiffv1alpha1.Instance) {
		ct := &inst.Spec.Containers[0]
		ct.Image = c.rootImage
		ct.Command = []string{"sh", "-c", fmt.Sprintf("mkdir -p /www && echo served by $(hostname) > /www/index.html && exec httpd -f -p %d -h /www", port)}
		ct.Ports = []skiffv1alpha1.ContainerPort{{Name: "http", ContainerPort: port, HostPort: hostPort, Protocol: skiffv1alpha1.ProtocolTCP}}
	}
}

// fetcher is a container that GETs / from addr (ip:port) every 200 ms
// and logs the response. It speaks HTTP through nc: Debian's static
// busybox wget crashes.
func (c *ociCluster) fetcher(name, addr string) skiffv1alpha1.Container {
	host, port, _ := strings.Cut(addr, ":")
	return skiffv1alpha1.Container{
		Name: name, Image: c.rootImage,
		Command: []string{"sh", "-c", fmt.Sprintf(`while true; do printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 2 %s %s; sleep 0.2; done`, host, port)},
	}
}

// logShows waits until the container's log has want.
func (c *ociCluster) logShows(t *testing.T, inst, container, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var got string
	for time.Now().Before(deadline) {
		if resp, err := c.logs(context.Background(), inst, "container="+container); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if got = string(body); resp.StatusCode == http.StatusOK && strings.Contains(got, want) {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("log of %s/%s: want %q, got %q", inst, container, want, got)
}

func hasIP(i *skiffv1alpha1.Instance) bool { return running(i) && i.Status.InstanceIP != "" }

func TestInstanceNetworkOnRunc(t *testing.T) {
	c := startOCICluster(t)
	host := c.cfg.NetNS
	subnet := netip.MustParsePrefix("10.244.1.0/24")

	// An Instance serving HTTP, with a second container that reaches it
	// on localhost: they share the Instance's namespace.
	web := c.run(t, "web", func(inst *skiffv1alpha1.Instance) {
		c.webServer(8080, 30080)(inst)
		inst.Spec.Containers = append(inst.Spec.Containers, c.fetcher("sidecar", "127.0.0.1:8080"))
	})
	web = c.waitFor(t, web, "running with an address", hasIP)
	ip := netip.MustParseAddr(web.Status.InstanceIP)
	if !subnet.Contains(ip) || web.Status.HostIP != "10.250.1.1" {
		t.Fatalf("instanceIP %s hostIP %s: want an address in %s on node 10.250.1.1", ip, web.Status.HostIP, subnet)
	}
	c.logShows(t, "web", "sidecar", "served by web")
	// From the node: the Instance's address, and the hostPort on the
	// node's loopback and on its address.
	for _, url := range []string{fmt.Sprintf("http://%s:8080/", ip), "http://127.0.0.1:30080/", "http://10.250.1.1:30080/"} {
		nettest.Eventually(t, host, url, "served by web")
	}
	// Another Instance on the node reaches it by address.
	fetch := c.run(t, "client", func(inst *skiffv1alpha1.Instance) {
		inst.Spec.Containers[0] = c.fetcher("fetch", ip.String()+":8080")
	})
	fetch = c.waitFor(t, fetch, "running with an address", hasIP)
	c.logShows(t, "client", "fetch", "served by web")
	if fetch.Status.InstanceIP == web.Status.InstanceIP {
		t.Fatalf("two Instances share %s", ip)
	}

	// An Instance bound here by hand past the scheduler, on web's
	// hostPort, waits for the port.
	taken := c.run(t, "taken", c.webServer(8080, 30080))
	c.waitFor(t, taken, "waiting for the port", func(i *skiffv1alpha1.Instance) bool {
		cs := i.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].State.Waiting != nil && cs[0].State.Waiting.Reason == "HostPortConflict" &&
			strings.Contains(cs[0].State.Waiting.Message, "host port 30080/TCP")
	})

	// hostNetwork keeps the node's namespace: served on the node itself.
	hostnet := c.run(t, "hostnet", func(inst *skiffv1alpha1.Instance) {
		c.webServer(8081, 8081)(inst)
		inst.Spec.HostNetwork = true
	})
	hostnet = c.waitFor(t, hostnet, "running", running)
	if hostnet.Status.InstanceIP != hostnet.Status.HostIP {
		t.Fatalf("hostNetwork instanceIP %q, want the node's %q", hostnet.Status.InstanceIP, hostnet.Status.HostIP)
	}
	nettest.Eventually(t, host, "http://127.0.0.1:8081/", "served by hostnet")

	// An agent restart keeps running Instances' networks: same address,
	// no restart, still served.
	leases := ipamLeases(t, c.cfg.DataDir)
	c.restartAgent(t)
	// The new agent's queue holds the Instances it found before one made
	// after its start: once that one runs, it has passed over the others.
	// It also shows what a container sees in /etc: its name at its
	// address, and the node's resolvers.
	after := c.run(t, "after", func(i *skiffv1alpha1.Instance) {
		i.Spec.Containers[0].Command = []string{"sh", "-c", "cat /etc/hosts /etc/resolv.conf; exec sleep 1000"}
	})
	after = c.waitFor(t, after, "running with an address", hasIP)
	c.logShows(t, "after", "main", after.Status.InstanceIP+"\tafter\n")
	if resolv, err := instanceResolvConf(hostResolvConf, systemdResolved); err != nil {
		t.Fatal(err)
	} else if len(resolv) > 0 {
		c.logShows(t, "after", "main", string(resolv))
	}
	for _, inst := range []*skiffv1alpha1.Instance{web, fetch} {
		got := c.waitFor(t, inst, "running", running)
		if got.Status.InstanceIP != inst.Status.InstanceIP || got.Status.ContainerStatuses[0].RestartCount != 0 {
			t.Fatalf("%s after an agent restart: %s (restarts %d), want %s and no restart", inst.Name, got.Status.InstanceIP, got.Status.ContainerStatuses[0].RestartCount, inst.Status.InstanceIP)
		}
	}
	want := strings.Split(leases+","+after.Status.InstanceIP, ",")
	slices.Sort(want)
	if got := strings.Split(ipamLeases(t, c.cfg.DataDir), ","); !slices.Equal(got, want) {
		t.Fatalf("address leases after restart %q, want %q: the old ones and the new Instance's", got, want)
	}
	nettest.Eventually(t, host, "http://127.0.0.1:30080/", "served by web")

	// Deleting an Instance releases its address and hostPort.
	if err := c.admin.Delete(context.Background(), web); err != nil {
		t.Fatal(err)
	}
	eventually(t, "web gone", func() bool {
		var got skiffv1alpha1.Instance
		return c.admin.Get(context.Background(), client.ObjectKeyFromObject(web), &got) != nil
	})
	// No rule of web's is left (portmap's DNAT named its address).
	if rules := nettest.Run(t, host, "iptables-save", "-t", "nat"); strings.Contains(rules, ip.String()+":8080") {
		t.Fatalf("web's port mapping to %s:8080 is still in the node's rules:\n%s", ip, rules)
	}
	// The port is free: the Instance that waited for it gets it.
	nettest.Eventually(t, host, "http://127.0.0.1:30080/", "served by taken")
	if got := ipamLeases(t, c.cfg.DataDir); strings.Contains(got, ip.String()) {
		t.Fatalf("address %s still leased: %s", ip, got)
	}
	if _, err := os.Stat(filepath.Join(c.cfg.DataDir, networkDir, "netns", string(web.UID))); !os.IsNotExist(err) {
		t.Fatalf("web's network namespace is still pinned: %v", err)
	}
}

// ipamLeases lists the addresses host-local holds.
func ipamLeases(t *testing.T, dataDir string) string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dataDir, networkDir, "ipam", "skiff"))
	if err != nil {
		t.Fatal(err)
	}
	var ips []string
	for _, e := range entries {
		if _, err := netip.ParseAddr(e.Name()); err == nil {
			ips = append(ips, e.Name())
		}
	}
	slices.Sort(ips)
	return strings.Join(ips, ",")
}

func TestInstancesReachAcrossNodes(t *testing.T) {
	// Two hosts on one link, each node's address on it.
	c := newOCICluster(t)
	c.cfg = c.nodeConfig(t, "n1")
	cfg2 := c.nodeConfig(t, "n2")
	nettest.Link(t, c.cfg.NetNS, cfg2.NetNS, "10.250.0.1/24", "10.250.0.2/24")
	c.startNode(t, c.cfg, "10.244.1.0/24")
	c.startNode(t, cfg2, "10.244.2.0/24")
	server := c.runOn(t, "n2", "server", c.webServer(8080, 0))
	server = c.waitFor(t, server, "running with an address", hasIP)
	if !netip.MustParsePrefix("10.244.2.0/24").Contains(netip.MustParseAddr(server.Status.InstanceIP)) {
		t.Fatalf("server on n2 got %s", server.Status.InstanceIP)
	}
	addr := server.Status.InstanceIP + ":8080"
	// n1's host and an Instance on n1 reach it through n1's route to n2.
	nettest.Eventually(t, c.cfg.NetNS, "http://"+addr+"/", "served by server")
	c.run(t, "client", func(inst *skiffv1alpha1.Instance) { inst.Spec.Containers[0] = c.fetcher("fetch", addr) })
	c.logShows(t, "client", "fetch", "served by server")
	route := nettest.Run(t, c.cfg.NetNS, "ip", "route", "show", "10.244.2.0/24")
	if !strings.Contains(route, "via 10.250.0.2") {
		t.Fatalf("n1's route to n2's subnet: %q", route)
	}
	// The Node goes (its Instance first: a deleted Node's key is no
	// longer trusted, so its agent could not finish the Instance): its
	// route goes.
	if err := c.admin.Delete(context.Background(), server); err != nil {
		t.Fatal(err)
	}
	eventually(t, "server gone", func() bool {
		var got skiffv1alpha1.Instance
		return c.admin.Get(context.Background(), client.ObjectKeyFromObject(server), &got) != nil
	})
	n2 := &skiffv1alpha1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n2"}}
	if err := c.admin.Delete(context.Background(), n2); err != nil {
		t.Fatal(err)
	}
	eventually(t, "n1's route to n2 removed", func() bool {
		return strings.TrimSpace(nettest.Run(t, c.cfg.NetNS, "ip", "route", "show", "10.244.2.0/24")) == ""
	})
}
