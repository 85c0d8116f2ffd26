package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"skiff.dev/skiff/gossip"
	"skiff.dev/skiff/nodeagent/image/imagebuild"
	"skiff.dev/skiff/nodeagent/network/nettest"
)

// gossipCluster is a control plane and agents on separate hosts: the
// control plane in this process's namespace, each agent (the whole
// process: API connection, gossip sockets, containers' networks) in a
// namespace of its own, all on one LAN.
type gossipCluster struct {
	t *testing.T
	// root is the test the cluster lives as long as (t may be a subtest).
	root  *testing.T
	s     *server
	lan   string
	cpIP  string
	hosts map[string]*gossipHost
}

// gossipHost is one machine: its namespace, its link to the LAN, its
// agent.
type gossipHost struct {
	name, ns, link, ip, dataDir string
	agent                       *agentProcess
}

func startGossipCluster(t *testing.T, n int) *gossipCluster {
	t.Helper()
	requireContainers(t)
	img, err := imagebuild.Busybox()
	if err != nil {
		t.Skip(err)
	}
	c := &gossipCluster{t: t, root: t, lan: nettest.LAN(t), cpIP: "10.251.0.1", hosts: map[string]*gossipHost{}}
	nettest.Attach(t, c.lan, "", c.cpIP+"/24")
	c.s = startServer(t, t.TempDir(), c.cpIP+":0", "--disable-agent", "--gossip-bind", c.cpIP+":0")
	for i := 1; i <= n; i++ {
		h := &gossipHost{name: fmt.Sprintf("g%d", i), ns: nettest.Host(t, fmt.Sprintf("g%d", i)), ip: fmt.Sprintf("10.251.0.%d", 10+i), dataDir: t.TempDir()}
		h.link = nettest.Attach(t, c.lan, h.ns, h.ip+"/24")
		if err := imagebuild.WriteTarball(filepath.Join(h.dataDir, "images", "busybox.tar"), "skiff.local/busybox:latest", img); err != nil {
			t.Fatal(err)
		}
		c.hosts[h.name] = h
		// After its agent stops (cleanups run last first): a host that
		// died leaves containers and their rootfs mounts behind.
		t.Cleanup(func() { removeLeftovers(h.dataDir) })
		c.startAgent(h)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, what := range []string{"nodes", "instances", "events"} {
				out, _ := c.s.kubectl("get", what, "-A", "-o", "wide")
				t.Logf("kubectl get %s:\n%s", what, lastLines(out, 40))
			}
		}
	})
	for name := range c.hosts {
		c.waitNode(name, "Ready", "alive")
	}
	// Gossip is healthy everywhere: the agents renew slowly.
	for name := range c.hosts {
		waitFor(t, 60*time.Second, func() (bool, error) {
			d, err := c.s.kubectl("get", "lease", "-n", "skiff-node-lease", name, "-o", "jsonpath={.spec.leaseDurationSeconds}")
			return err == nil && d == "120", nil
		})
	}
	return c
}

// startAgent runs h's agent inside h's namespace.
func (c *gossipCluster) startAgent(h *gossipHost) {
	c.t.Helper()
	args := []string{"--net=" + h.ns, skiffBin, "agent", "--server", c.s.url, "--join-token", filepath.Join(c.s.dataDir, "join-token"),
		"--data-dir", h.dataDir, "--node-name", h.name, "--runtime", "runc", "--listen", ":10250"}
	cmd := exec.Command("nsenter", args...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	a := &agentProcess{cmd: cmd}
	h.agent = a
	c.root.Cleanup(func() {
		if a.cmd.ProcessState == nil {
			_ = a.cmd.Process.Signal(syscall.SIGTERM)
			_ = a.cmd.Wait()
		}
		if c.root.Failed() {
			c.root.Logf("agent %s (pid %d):\n%s", h.name, a.cmd.Process.Pid, lastLines(out.String(), 60))
		}
	})
}

// removeLeftovers deletes the containers and unmounts the root file
// systems an agent left in dataDir.
func removeLeftovers(dataDir string) {
	root := filepath.Join(dataDir, "runtime", "state")
	list, _ := exec.Command("runc", "--root", root, "list", "-q").Output()
	for _, id := range strings.Fields(string(list)) {
		_ = exec.Command("runc", "--root", root, "delete", "-f", id).Run()
	}
	mounts, _ := os.ReadFile("/proc/self/mounts")
	for _, line := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(f[1], dataDir+"/") {
			_ = syscall.Unmount(f[1], syscall.MNT_DETACH)
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// waitNode waits for the node's phase and GOSSIP column.
func (c *gossipCluster) waitNode(name, phase, gossipState string) {
	c.t.Helper()
	waitFor(c.t, 90*time.Second, func() (bool, error) {
		out, err := c.s.kubectl("get", "node", name, "-o", "wide", "--no-headers")
		f := strings.Fields(out)
		return err == nil && len(f) > 0 && f[1] == phase && f[len(f)-1] == gossipState, nil
	})
}

// runningContainers counts the running containers of app's Instances on
// every host, as runc sees them: the truth, not what the API says.
func (c *gossipCluster) runningContainers(uids []string) map[string]int {
	out := map[string]int{}
	for name, h := range c.hosts {
		list, _ := exec.Command("runc", "--root", filepath.Join(h.dataDir, "runtime", "state"), "list").CombinedOutput()
		for _, line := range strings.Split(string(list), "\n") {
			for _, uid := range uids {
				if strings.HasPrefix(line, uid) && strings.Contains(line, "running") {
					out[name]++
				}
			}
		}
	}
	return out
}

// placed runs a one-replica Workload on node: the others are cordoned
// while it is placed. It returns the Instance's name and UID.
func (c *gossipCluster) placed(app, node string) (name, uid string) {
	c.t.Helper()
	for other := range c.hosts {
		if other != node {
			c.s.mustKubectl(c.t, "patch", "node", other, "--type=merge", "-p", `{"spec":{"unschedulable":true}}`)
		}
	}
	c.s.mustKubectl(c.t, "apply", "-f", writeFile(c.t, app+".yaml", fmt.Sprintf(`apiVersion: skiff.dev/v1alpha1
kind: Workload
metadata:
  name: %[1]s
  namespace: default
spec:
  replicas: 1
  template:
    metadata:
      labels:
        app: %[1]s
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: c
        image: skiff.local/busybox:latest
        command: ["sh", "-c", "exec sleep 100000"]
`, app)))
	waitFor(c.t, 90*time.Second, func() (bool, error) {
		rows := c.instances(app)
		if len(rows) == 1 && rows[0].node == node && rows[0].phase == "Running" {
			name, uid = rows[0].name, rows[0].uid
			return true, nil
		}
		return false, nil
	})
	for other := range c.hosts {
		if other != node {
			c.s.mustKubectl(c.t, "patch", "node", other, "--type=merge", "-p", `{"spec":{"unschedulable":false}}`)
		}
	}
	return name, uid
}

type instanceRow struct{ name, uid, node, phase, reason string }

// instances lists app's Instances that are not being deleted.
func (c *gossipCluster) instances(app string) []instanceRow {
	out, err := c.s.kubectl("get", "instances", "-l", "app="+app, "-o",
		`jsonpath={range .items[*]}{.metadata.name}{"|"}{.metadata.uid}{"|"}{.spec.nodeName}{"|"}{.status.phase}{"|"}{.status.reason}{"|"}{.metadata.deletionTimestamp}{"\n"}{end}`)
	if err != nil {
		return nil
	}
	var rows []instanceRow
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "|")
		if len(f) == 6 && f[5] == "" {
			rows = append(rows, instanceRow{f[0], f[1], f[2], f[3], f[4]})
		}
	}
	return rows
}

// replacement waits for a Running Instance of app other than uid and
// returns it.
func (c *gossipCluster) replacement(app, uid string, within time.Duration) instanceRow {
	c.t.Helper()
	var got instanceRow
	waitFor(c.t, within, func() (bool, error) {
		for _, r := range c.instances(app) {
			if r.uid != uid && r.phase == "Running" {
				got = r
				return true, nil
			}
		}
		return false, nil
	})
	return got
}

func (c *gossipCluster) taints(node string) string {
	out, _ := c.s.kubectl("get", "node", node, "-o", "jsonpath={.spec.taints[*].key}")
	return out
}

func (c *gossipCluster) events(reason, node string) int {
	out, _ := c.s.kubectl("get", "events", "-n", "default", "--field-selector", "reason="+reason+",involvedObject.name="+node, "-o", "name")
	return len(strings.Fields(out))
}

// TestGossipCluster drives a three-host cluster through what gossip is
// for: an agent restart (no death), a node cut off from the control
// plane only (no replacement), a key rotation (no flapping), members
// that must be refused, a node cut off from everything (replaced, the
// original fenced, never two copies after the heal), and a machine death
// (replaced in seconds).
func TestGossipCluster(t *testing.T) {
	c := startGossipCluster(t, 3)
	wide := c.s.mustKubectl(t, "get", "nodes", "-o", "wide")
	if h := headerFields(wide); h[len(h)-1] != "GOSSIP" {
		t.Fatalf("kubectl get nodes -o wide: no GOSSIP column:\n%s", wide)
	}
	for name := range c.hosts {
		if c.events("NodeJoined", name) == 0 {
			t.Errorf("no NodeJoined event for %s", name)
		}
	}
	// The control plane's member reports the cluster on /health and /metrics.
	waitFor(t, 30*time.Second, func() (bool, error) {
		health, err := c.s.kubectl("get", "--raw", "/health")
		return err == nil && strings.Contains(health, `"cluster":{"status":"ok","detail":{`) && strings.Contains(health, `"members":{"alive":3}`), nil
	})
	if metrics := c.s.mustKubectl(t, "get", "--raw", "/metrics"); !strings.Contains(metrics, `skiff_gossip_members{state="alive"} 3`) ||
		!strings.Contains(metrics, "skiff_gossip_probe_rtt_seconds_count") {
		t.Errorf("/metrics lacks the gossip members or probe round trips")
	}

	t.Run("agent restart is not a death", func(t *testing.T) {
		c.t = t
		inst, uid := c.placed("steady", "g1")
		before := c.s.mustKubectl(t, "get", "instance", inst, "-o", "jsonpath={.status.containerStatuses[0].state.running.startedAt}")
		dead := c.events("NodeDead", "g1")
		h := c.hosts["g1"]
		h.agent.kill9(t)
		c.startAgent(h)                              // systemd's Restart=always
		deadline := time.Now().Add(25 * time.Second) // many suspicion timeouts
		for time.Now().Before(deadline) {
			if strings.Contains(c.taints("g1"), "node.skiff.dev/dead") {
				t.Fatal("the restarted agent's node was tainted dead")
			}
			if g, _ := c.s.kubectl("get", "node", "g1", "-o", "jsonpath={.status.gossip}"); g == "dead" {
				t.Fatal("gossip declared the restarted agent dead")
			}
			time.Sleep(200 * time.Millisecond)
		}
		c.waitNode("g1", "Ready", "alive")
		rows := c.instances("steady")
		if len(rows) != 1 || rows[0].uid != uid || rows[0].phase != "Running" {
			t.Fatalf("after the agent's restart: %+v, want the one Instance %s still Running (no replacement)", rows, uid)
		}
		after := c.s.mustKubectl(t, "get", "instance", inst, "-o", "jsonpath={.status.containerStatuses[0].state.running.startedAt} {.status.containerStatuses[0].restartCount}")
		if after != before+" 0" {
			t.Errorf("container after the agent's restart: %q, want %q (not restarted)", after, before+" 0")
		}
		if n := c.events("NodeDead", "g1"); n != dead {
			t.Errorf("%d NodeDead events for a restart", n-dead)
		}
	})

	t.Run("cut off from the control plane only", func(t *testing.T) {
		c.t = t
		_, uid := c.placed("island", "g1")
		h := c.hosts["g1"]
		nettest.Run(t, h.ns, "iptables", "-I", "INPUT", "-s", c.cpIP, "-j", "DROP")
		nettest.Run(t, h.ns, "iptables", "-I", "OUTPUT", "-d", c.cpIP, "-j", "DROP")
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if strings.Contains(c.taints("g1"), "node.skiff.dev/dead") {
				t.Fatal("a node its peers still reach was tainted dead")
			}
			if rows := c.instances("island"); len(rows) != 1 || rows[0].uid != uid {
				t.Fatalf("replaced while only cut off from the control plane: %+v", rows)
			}
			time.Sleep(250 * time.Millisecond)
		}
		if g, _ := c.s.kubectl("get", "node", "g1", "-o", "jsonpath={.status.gossip}"); g != "alive" {
			t.Errorf("gossip of a node its peers reach: %q, want alive", g)
		}
		if n := c.runningContainers([]string{uid})["g1"]; n != 1 {
			t.Errorf("g1 fenced its Instance though it reaches its peers (%d running)", n)
		}
		nettest.Run(t, h.ns, "iptables", "-D", "INPUT", "-s", c.cpIP, "-j", "DROP")
		nettest.Run(t, h.ns, "iptables", "-D", "OUTPUT", "-d", c.cpIP, "-j", "DROP")
		c.waitNode("g1", "Ready", "alive")
	})

	t.Run("key rotation while the cluster runs", func(t *testing.T) {
		c.t = t
		suspects := 0
		for name := range c.hosts {
			suspects += c.events("NodeSuspect", name) + c.events("NodeDead", name)
		}
		out, err := exec.Command(skiffBin, "gossip", "rotate-key", "--kubeconfig", c.s.kubeconfig).CombinedOutput()
		if err != nil || !strings.Contains(string(out), `"primary"`) {
			t.Fatalf("skiff gossip rotate-key: %v\n%s", err, out)
		}
		serverKeys, err := os.ReadFile(filepath.Join(c.s.dataDir, "gossip.keyring"))
		if err != nil {
			t.Fatal(err)
		}
		for name, h := range c.hosts {
			keys, err := os.ReadFile(filepath.Join(h.dataDir, "gossip.keyring"))
			if err != nil || string(keys) != string(serverKeys) {
				t.Errorf("%s's keyring after the rotation: %s, %v; want the server's %s", name, keys, err, serverKeys)
			}
			if fi, err := os.Stat(filepath.Join(h.dataDir, "gossip.keyring")); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("%s's keyring file: %v, %v; want mode 0600", name, fi.Mode(), err)
			}
		}
		time.Sleep(5 * time.Second) // several probe rounds with the new key only
		after := 0
		for name := range c.hosts {
			c.waitNode(name, "Ready", "alive")
			after += c.events("NodeSuspect", name) + c.events("NodeDead", name)
		}
		if after != suspects {
			t.Errorf("%d members flapped during the rotation", after-suspects)
		}
	})

	t.Run("members without the key or with a forged identity are refused", func(t *testing.T) {
		c.t = t
		keys, err := gossip.LoadKeyring(filepath.Join(c.s.dataDir, "gossip.keyring"))
		if err != nil {
			t.Fatal(err)
		}
		stranger, _ := gossip.NewKey()
		strangerRing, _ := gossip.NewKeyring("", gossip.Keys{Keys: []string{base64.StdEncoding.EncodeToString(stranger)}})
		gossipAddr := c.s.mustKubectl(t, "get", "node", "g1", "-o", "jsonpath={.status.gossipAddress}")
		for _, m := range []struct {
			name string
			ring *gossip.Keyring
		}{{"impostor", keys}, {"stranger", strangerRing}} {
			pub, _, _ := ed25519.GenerateKey(rand.Reader)
			registered, _, _ := ed25519.GenerateKey(rand.Reader)
			key := base64.StdEncoding.EncodeToString(registered)
			if m.name == "stranger" {
				key = base64.StdEncoding.EncodeToString(pub) // its key is right: only the gossip key is missing
			}
			c.s.mustKubectl(t, "apply", "-f", writeFile(t, m.name+".yaml", fmt.Sprintf("apiVersion: skiff.dev/v1alpha1\nkind: Node\nmetadata:\n  name: %s\nspec:\n  publicKey: %s\n", m.name, key)))
			mem, err := gossip.New(gossip.Config{
				Name: m.name, Role: gossip.RoleNode, PublicKey: base64.StdEncoding.EncodeToString(pub),
				Bind: c.cpIP + ":0", Keyring: m.ring, Timing: gossip.DefaultTiming(),
				Seeds: func(context.Context) ([]string, error) { return []string{gossipAddr}, nil },
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- mem.Run(ctx) }()
			t.Cleanup(func() { cancel(); <-done })
		}
		waitFor(t, 30*time.Second, func() (bool, error) { return c.events("GossipKeyMismatch", "impostor") > 0, nil })
		for _, name := range []string{"impostor", "stranger"} {
			if g, _ := c.s.kubectl("get", "node", name, "-o", "jsonpath={.status.gossip}"); g != "" {
				t.Errorf("node %s: gossip %q; the control plane must not take it for a member", name, g)
			}
		}
		c.s.mustKubectl(t, "delete", "node", "impostor", "stranger")
	})

	t.Run("cut off from everything", func(t *testing.T) {
		c.t = t
		_, uid := c.placed("fenced", "g2")
		h := c.hosts["g2"]
		cut := time.Now()
		nettest.Run(t, h.ns, "ip", "link", "set", h.link, "down")
		// The agent fences: its container stops before long.
		var fencedAt time.Time
		waitFor(t, 30*time.Second, func() (bool, error) {
			if c.runningContainers([]string{uid})["g2"] == 0 {
				fencedAt = time.Now()
				return true, nil
			}
			return false, nil
		})
		repl := c.replacement("fenced", uid, 60*time.Second)
		replacedAt := time.Now()
		t.Logf("cut off at 0: fenced after %s, replacement Running on %s after %s (overlap %s)",
			fencedAt.Sub(cut).Round(100*time.Millisecond), repl.node, replacedAt.Sub(cut).Round(100*time.Millisecond),
			max(0, fencedAt.Sub(replacedAt)).Round(100*time.Millisecond))
		if !strings.Contains(c.taints("g2"), "node.skiff.dev/dead") {
			t.Errorf("g2 taints %q: want dead", c.taints("g2"))
		}
		nettest.Run(t, h.ns, "ip", "link", "set", h.link, "up")
		c.waitNode("g2", "Ready", "alive")
		waitFor(t, 30*time.Second, func() (bool, error) { return !strings.Contains(c.taints("g2"), "node.skiff.dev/dead"), nil })
		// After the heal: one copy runs (counted over every Instance of
		// the app, so that a replacement of the replacement counts too),
		// the original ended NodeLost.
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			uids := []string{uid, repl.uid}
			for _, r := range c.instances("fenced") {
				if !slices.Contains(uids, r.uid) {
					uids = append(uids, r.uid)
				}
			}
			running := c.runningContainers(uids)
			total := 0
			for _, n := range running {
				total += n
			}
			if total != 1 {
				t.Fatalf("%d running copies after the heal: %v", total, running)
			}
			time.Sleep(250 * time.Millisecond)
		}
		for _, r := range c.instances("fenced") {
			if r.uid != uid && r.uid != repl.uid {
				t.Errorf("after the heal, %s on %s (%s): the replacement was replaced; a healthy node was taken for dead", r.name, r.node, r.phase)
			}
		}
		reason, _ := c.s.kubectl("get", "instances", "-l", "app=fenced", "-o", `jsonpath={range .items[?(@.metadata.uid=="`+uid+`")]}{.status.phase}/{.status.reason}{end}`)
		if reason != "" && reason != "Failed/NodeLost" {
			t.Errorf("the original after the heal: %s, want Failed/NodeLost (or deleted)", reason)
		}
	})

	t.Run("machine death", func(t *testing.T) {
		c.t = t
		_, uid := c.placed("victim", "g3")
		h := c.hosts["g3"]
		died := time.Now()
		h.agent.kill9(t)
		root := filepath.Join(h.dataDir, "runtime", "state")
		list, _ := exec.Command("runc", "--root", root, "list", "-q").Output()
		for _, id := range strings.Fields(string(list)) {
			_ = exec.Command("runc", "--root", root, "kill", id, "KILL").Run()
		}
		nettest.Run(t, h.ns, "ip", "link", "set", h.link, "down")
		repl := c.replacement("victim", uid, 60*time.Second)
		took := time.Since(died)
		t.Logf("machine death to replacement Running on %s: %s", repl.node, took.Round(100*time.Millisecond))
		if took > 30*time.Second {
			t.Errorf("replacement took %s; gossip should find a death in seconds", took)
		}
		if c.events("NodeDead", "g3") == 0 {
			t.Error("no NodeDead event for g3")
		}
	})
}
