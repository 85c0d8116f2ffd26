package e2e

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"skiff.dev/skiff/nodeagent/network/nettest"
)

// instanceIPs waits for n Instances with the label selector to have an
// address, and returns them.
func (s *server) instanceIPs(t *testing.T, selector string, n int) []string {
	t.Helper()
	var ips []string
	waitFor(t, 60*time.Second, func() (bool, error) {
		out, err := s.kubectl("get", "instances", "-l", selector, "-o", "jsonpath={.items[*].status.instanceIP}")
		ips = strings.Fields(out)
		return err == nil && len(ips) == n, nil
	})
	return ips
}

// TestPublishedSample is the networking tour: after `make run` the node
// has its subnet, and the published sample Workload is reached at its
// Instance's address and at its hostPort on the node, on loopback and on
// the node's address. A second replica finds no free port on the one
// node and says so; deleting the Workload closes the port.
func TestPublishedSample(t *testing.T) {
	requireContainers(t)
	dataDir := t.TempDir()
	sampleImages(t, dataDir)
	host := nodeHost(t, "10.250.1.1/24")
	s := startServer(t, dataDir, "127.0.0.1:0", "--runtime", "runc", "--agent-listen", "127.0.0.1:0", "--node-name", "local",
		"--agent-netns", host, "--cluster-cidr", "10.99.0.0/16")
	var cidr string
	waitFor(t, 60*time.Second, func() (bool, error) {
		out, err := s.kubectl("get", "node", "local", "-o", "jsonpath={.status.phase} {.spec.instanceCIDR}")
		phase, c, _ := strings.Cut(out, " ")
		cidr = c
		return err == nil && phase == "Ready" && c != "", nil
	})
	if cidr != "10.99.0.0/24" {
		t.Fatalf("node's instanceCIDR %q, want the first /24 of --cluster-cidr 10.99.0.0/16", cidr)
	}
	if wide := s.mustKubectl(t, "get", "nodes", "-o", "wide"); !slices.Contains(headerFields(wide), "CIDR") || !strings.Contains(wide, cidr) {
		t.Errorf("kubectl get nodes -o wide does not show the CIDR:\n%s", wide)
	}

	s.mustKubectl(t, "apply", "-f", "../../config/samples/published.yaml")
	ips := s.instanceIPs(t, "app=front", 1)
	if ip, err := netip.ParseAddr(ips[0]); err != nil || !netip.MustParsePrefix(cidr).Contains(ip) {
		t.Fatalf("instanceIP %q: want an address in %s", ips[0], cidr)
	}
	if wide := s.mustKubectl(t, "get", "instances", "-l", "app=front", "-o", "wide"); !strings.Contains(wide, ips[0]) {
		t.Errorf("kubectl get instances -o wide does not show the address:\n%s", wide)
	}
	for _, url := range []string{"http://" + ips[0] + ":8080/", "http://127.0.0.1:30080/", "http://10.250.1.1:30080/"} {
		nettest.Eventually(t, host, url, "hello from skiff")
	}

	// One node, one port: the second replica stays Pending and says why.
	s.mustKubectl(t, "scale", "workload", "front", "--replicas=2")
	waitFor(t, 60*time.Second, func() (bool, error) {
		out, err := s.kubectl("get", "instances", "-l", "app=front", "-o", "jsonpath={.items[*].status.conditions[?(@.type=='Scheduled')].message}")
		return err == nil && strings.Contains(out, "didn't have free ports for the requested instance ports"), nil
	})

	s.mustKubectl(t, "delete", "workload", "front", "--timeout=120s")
	waitFor(t, 120*time.Second, func() (bool, error) {
		out, err := s.kubectl("get", "instances", "-l", "app=front", "-o", "name")
		return err == nil && strings.TrimSpace(out) == "", nil
	})
	if _, err := nettest.Get(host, "http://127.0.0.1:30080/"); err == nil {
		t.Error("the hostPort still answers after the Workload is gone")
	}
	if rules := nettest.Run(t, host, "iptables-save", "-t", "nat"); strings.Contains(rules, "30080") {
		t.Errorf("the port mapping of 30080 is still in the node's rules:\n%s", rules)
	}
}
