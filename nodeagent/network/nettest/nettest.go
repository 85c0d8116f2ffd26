// Package nettest makes network namespaces that act as hosts in tests,
// links them, and serves and fetches HTTP inside them. Nothing here
// contacts an address outside the namespaces a test made.
package nettest

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"skiff.dev/skiff/nodeagent/network"
)

// Skip skips the test unless it can make namespaces and the CNI plugins
// and iptables are installed (make test installs them).
func Skip(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	if err := network.CheckPlugins(network.DefaultPluginDir); err != nil {
		t.Skipf("%v (make test installs them)", err)
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("iptables is not installed (make test installs it)")
	}
}

// Host makes a network namespace named after the test, with loopback up,
// removed when the test ends. It returns the namespace's path.
func Host(t testing.TB, name string) string {
	t.Helper()
	ns := fmt.Sprintf("skt-%s-%d", name, time.Now().UnixNano()%1e9)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "delete", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns delete %s: %v: %s", ns, err, out)
		}
	})
	path := filepath.Join("/run/netns", ns)
	Run(t, path, "ip", "link", "set", "lo", "up")
	return path
}

// Run runs a command inside the namespace at path and returns its output.
func Run(t testing.TB, path string, args ...string) string {
	t.Helper()
	out, err := exec.Command("nsenter", append([]string{"--net=" + path}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s in %s: %v: %s", strings.Join(args, " "), path, err, out)
	}
	return string(out)
}

// Link joins two hosts by a veth pair, with addresses a and b (CIDRs
// such as 10.250.0.1/24).
func Link(t testing.TB, hostA, hostB, a, b string) {
	t.Helper()
	name := fmt.Sprintf("skt%d", time.Now().UnixNano()%1e6)
	nsB, err := netns.GetFromPath(hostB)
	if err != nil {
		t.Fatal(err)
	}
	defer nsB.Close()
	err = network.InNetNS(hostA, func() error {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name + "a"}, PeerName: name + "b", PeerNamespace: netlink.NsFd(int(nsB))}
		return netlink.LinkAdd(veth)
	})
	if err != nil {
		t.Fatalf("veth %s: %v", name, err)
	}
	Run(t, hostA, "ip", "addr", "add", a, "dev", name+"a")
	Run(t, hostA, "ip", "link", "set", name+"a", "up")
	Run(t, hostB, "ip", "addr", "add", b, "dev", name+"b")
	Run(t, hostB, "ip", "link", "set", name+"b", "up")
}

// Uplink gives the host an address (a CIDR such as 10.250.1.1/24) on a
// link to a namespace of its own, which holds the subnet's .254: a node
// address on a network no other host is on.
func Uplink(t testing.TB, host, addr string) {
	t.Helper()
	p := netip.MustParsePrefix(addr)
	peer := p.Masked().Addr().As4()
	peer[3] = 254
	Link(t, host, Host(t, "up"), addr, fmt.Sprintf("%s/%d", netip.AddrFrom4(peer), p.Bits()))
}

// Serve answers HTTP with body on addr (host:port) inside the namespace
// at path until the test ends.
func Serve(t testing.TB, path, addr, body string) {
	t.Helper()
	serve(t, path, addr, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, body) }))
}

func serve(t testing.TB, path, addr string, h http.Handler) {
	t.Helper()
	ln, err := network.Listen(path, "tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s in %s: %v", addr, path, err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// ServeRemoteAddr answers HTTP with the client's address (ip:port) on
// addr inside the namespace at path until the test ends.
func ServeRemoteAddr(t testing.TB, path, addr string) {
	t.Helper()
	serve(t, path, addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.RemoteAddr) }))
}

// Client is an HTTP client whose connections are made inside the
// namespace at path.
func Client(path string) *http.Client {
	return &http.Client{
		Timeout: 3 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext:       network.DialContext(path, &net.Dialer{Timeout: 2 * time.Second}),
		},
	}
}

// Get fetches url from inside the namespace at path and returns the body.
func Get(path, url string) (string, error) {
	resp, err := Client(path).Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), err
}

// Eventually polls Get until it returns want or the deadline passes.
func Eventually(t testing.TB, path, url, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var got string
	var err error
	for time.Now().Before(deadline) {
		if got, err = Get(path, url); err == nil && strings.Contains(got, want) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("GET %s from %s: want %q, got %q, %v", url, path, want, got, err)
}

// Addr returns the first IPv4 address of dev inside the namespace.
func Addr(t testing.TB, path, dev string) netip.Addr {
	t.Helper()
	var out netip.Addr
	err := network.InNetNS(path, func() error {
		l, err := netlink.LinkByName(dev)
		if err != nil {
			return err
		}
		addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
		if err != nil || len(addrs) == 0 {
			return fmt.Errorf("no address on %s: %v", dev, err)
		}
		out, _ = netip.AddrFromSlice(addrs[0].IP.To4())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// LAN makes a network segment: a namespace holding a bridge, which hosts
// join with Attach. It returns the namespace's path.
func LAN(t testing.TB) string {
	t.Helper()
	lan := Host(t, "lan")
	Run(t, lan, "ip", "link", "add", "br0", "type", "bridge")
	Run(t, lan, "ip", "link", "set", "br0", "up")
	return lan
}

// Attach puts host (a namespace path; empty is this process's own) on
// the LAN with address addr (a CIDR such as 10.251.0.1/24) and returns
// the name of host's link to it: setting it down cuts the host off.
func Attach(t testing.TB, lan, host, addr string) string {
	t.Helper()
	name := fmt.Sprintf("skl%d", time.Now().UnixNano()%1e8)
	run := func(args ...string) {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("ip", "link", "add", name+"h", "type", "veth", "peer", "name", name+"l")
	run("ip", "link", "set", name+"l", "netns", filepath.Base(lan))
	Run(t, lan, "ip", "link", "set", name+"l", "master", "br0")
	Run(t, lan, "ip", "link", "set", name+"l", "up")
	if host == "" {
		t.Cleanup(func() { _ = exec.Command("ip", "link", "delete", name+"h").Run() })
		run("ip", "addr", "add", addr, "dev", name+"h")
		run("ip", "link", "set", name+"h", "up")
		return name + "h"
	}
	run("ip", "link", "set", name+"h", "netns", filepath.Base(host))
	Run(t, host, "ip", "addr", "add", addr, "dev", name+"h")
	Run(t, host, "ip", "link", "set", name+"h", "up")
	return name + "h"
}
