package e2e

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"skiff.dev/skiff/nodeagent/image/imagebuild"
	"skiff.dev/skiff/nodeagent/network/nettest"
)

// TestHighAvailability runs three servers (hosts are network namespaces,
// servers the built binary) and puts them through the faults of a
// cluster: the etcd leader's server killed under 1,000 concurrent
// creates, a minority server cut off, a server joining under load, a
// removed server coming back, and a restore from a snapshot onto wiped
// servers.
func TestHighAvailability(t *testing.T) {
	c := newHACluster(t, "10.252.0")
	s1, s2, s3 := c.host("s1", 1), c.host("s2", 2), c.host("s3", 3)
	// s1 first runs alone, as the README's reader's server has.
	c.start(s1)
	s1.s.mustKubectl(t, "create", "configmap", "from-before", "--from-literal=a=b")
	if err := s1.s.stop(); err != nil {
		t.Fatal(err)
	}
	c.readmeHA()
	c.waitVoters(s1, "s1", "s2", "s3")
	c.waitGossip()
	s2.s.mustKubectl(t, "get", "configmap", "from-before") // kept through --cluster-init, served by a joined server
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	s3.s.mustKubectl(t, "create", "namespace", "ha")

	t.Run("leader killed under 1000 creates", func(t *testing.T) { leaderKilled(ctx, t, c) })
	t.Run("partitioned minority", func(t *testing.T) { partitionedMinority(ctx, t, c) })
	t.Run("agent fails over", func(t *testing.T) { agentFailsOver(ctx, t, c) })
	t.Run("learner joins under load", func(t *testing.T) { learnerJoinsUnderLoad(ctx, t, c) })
	t.Run("snapshot wipe restore", func(t *testing.T) { snapshotWipeRestore(ctx, t, c) })
}

// leaderKilled: kill -9 the etcd leader's server while 1,000 creates go
// to the other two; every acknowledged create is there afterwards, and
// writes resume. The killed server then comes back with its data.
func leaderKilled(ctx context.Context, t *testing.T, c *haCluster) {
	lead := c.hosts[c.leader(c.hosts["s1"])]
	var others []*haHost
	var clients []kubernetes.Interface
	for _, h := range c.hosts {
		if h != lead {
			others = append(others, h)
			clients = append(clients, c.client(h))
		}
	}
	t.Logf("etcd leader: %s; creates go to %s and %s", lead.name, others[0].name, others[1].name)
	done := make(chan *createLoad)
	go func() { done <- runCreates(ctx, clients, "ha", "kill", 1000, 8, nil) }()
	// Kill once some creates are through.
	waitFor(t, 60*time.Second, func() (bool, error) {
		names, err := configMapNames(ctx, clients[0], "ha")
		return len(names) >= 200, err
	})
	killed := time.Now()
	lead.s.kill9()
	load := <-done
	t.Logf("acknowledged %d of 1000 creates, %d failed (the failed are not promised)", len(load.acked), len(load.errs))
	stall, ok := load.longestStall(killed)
	if !ok {
		t.Fatalf("no create was acknowledged after the leader was killed; errors: %v", load.errs[:min(5, len(load.errs))])
	}
	t.Logf("writes stalled at most %v after the kill (the longest gap between acknowledgements)", stall.Round(time.Millisecond))
	if stall > 30*time.Second {
		t.Errorf("writes stopped for %v after the leader was killed; want well under 30s", stall)
	}
	if len(load.acked) < 900 {
		t.Errorf("only %d of 1000 creates acknowledged: the two servers left should take nearly all", len(load.acked))
	}
	for _, cs := range clients {
		names, err := configMapNames(ctx, cs, "ha")
		if err != nil {
			t.Fatal(err)
		}
		for name := range load.acked {
			if !names[name] {
				t.Errorf("acknowledged create %s is lost", name)
			}
		}
	}
	// The killed server comes back as a member with its data, and catches up.
	c.start(lead)
	c.waitVoters(lead, "s1", "s2", "s3")
	waitFor(t, 60*time.Second, func() (bool, error) {
		names, err := configMapNames(ctx, c.client(lead), "ha")
		for name := range load.acked {
			if !names[name] {
				return false, err
			}
		}
		return err == nil, nil
	})
}

// partitionedMinority: a server cut off from the other two refuses
// writes (no split brain) while they go on, and catches up after the heal.
func partitionedMinority(ctx context.Context, t *testing.T, c *haCluster) {
	minority := c.hosts["s3"]
	c.cut(minority)
	healed := false
	defer func() {
		if !healed {
			c.heal(minority)
		}
	}()
	cut := c.client(minority)
	_, err := cut.CoreV1().ConfigMaps("ha").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "split-brain"}}, metav1.CreateOptions{})
	if err == nil {
		t.Fatal("a server cut off from the other two acknowledged a create: split brain")
	}
	t.Logf("the cut-off server refused the create: %v", err)
	majority := c.client(c.hosts["s1"])
	for i := range 20 {
		if _, err := majority.CoreV1().ConfigMaps("ha").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("majority-%d", i)}}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("the majority refused a create while s3 was cut off: %v", err)
		}
	}
	if _, err := majority.CoreV1().ConfigMaps("ha").Get(ctx, "split-brain", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the majority's view of the create the cut-off server refused: %v; want NotFound", err)
	}
	// (A create that timed out has no known outcome: etcd may still
	// commit it once the partition heals, as Kubernetes says of a 504.)
	c.heal(minority)
	healed = true
	// Cut off, its controllers lost their leadership, not the server its life.
	if why := minority.s.exitedEarly(); why != "" {
		t.Fatal(why)
	}
	waitFor(t, 90*time.Second, func() (bool, error) {
		names, err := configMapNames(ctx, cut, "ha")
		if err != nil {
			return false, nil
		}
		for i := range 20 {
			if !names[fmt.Sprintf("majority-%d", i)] {
				return false, nil
			}
		}
		return true, nil
	})
}

// learnerJoinsUnderLoad: a fourth server joins while creates go on; it
// votes, serves everything, and no create fails. Then it is removed, and
// cannot come back with its old data.
func learnerJoinsUnderLoad(ctx context.Context, t *testing.T, c *haCluster) {
	s1 := c.hosts["s1"]
	stop := make(chan struct{})
	done := make(chan *createLoad)
	go func() {
		done <- runCreates(ctx, []kubernetes.Interface{c.client(s1), c.client(c.hosts["s2"])}, "ha", "load", 0, 4, stop)
	}()
	s4 := c.host("s4", 4)
	c.join(s4, s1)
	c.waitVoters(s1, "s1", "s2", "s3", "s4")
	close(stop)
	load := <-done
	t.Logf("%d creates while s4 joined, %d failed", len(load.acked), len(load.errs))
	if len(load.errs) > 0 {
		t.Errorf("creates failed while a server joined: %v", load.errs[:min(5, len(load.errs))])
	}
	if len(load.acked) == 0 {
		t.Error("no create was acknowledged while s4 joined: no load")
	}
	names, err := configMapNames(ctx, c.client(s4), "ha")
	if err != nil {
		t.Fatal(err)
	}
	for name := range load.acked {
		if !names[name] {
			t.Errorf("the joined server does not serve %s", name)
		}
	}

	// Lost (its Lease stays in the list of servers until it expires), then
	// removed: out of the list at once, and it cannot come back with its data.
	waitFor(t, 30*time.Second, func() (bool, error) {
		list, err := s1.s.kubectl("get", "--raw", "/skiff/servers")
		return err == nil && strings.Contains(list, s4.url()), nil
	})
	s4.s.kill9()
	if out, err := skiffCmd("server", "remove", "s4", "--kubeconfig", s1.s.kubeconfig); err != nil {
		t.Fatalf("skiff server remove s4: %v: %s", err, out)
	}
	if list, err := s1.s.kubectl("get", "--raw", "/skiff/servers"); err != nil || strings.Contains(list, s4.url()) {
		t.Errorf("the list of servers right after s4 was removed: %s, %v; want it without s4", list, err)
	}
	c.waitVoters(s1, "s1", "s2", "s3")
	delete(c.hosts, "s4")
	cmd := exec.Command("nsenter", "--net="+s4.ns, skiffBin, "server", "--data-dir", s4.dataDir, "--listen", s4.ip+":6443",
		"--disable-agent", "--node-name", "s4", "--gossip-bind", s4.ip+":0", "--agent-gossip-bind", s4.ip+":0")
	out, err := runWithTimeout(cmd, 2*time.Minute)
	if err == nil || !strings.Contains(out, "removed from its cluster") {
		t.Errorf("a removed server started with its old data: %v\n%s", err, lastLines(out, 10))
	}
}

// snapshotWipeRestore: a snapshot, then every server's etcd wiped; the
// snapshot restored on one server, the others join it again, and every
// object is back.
func snapshotWipeRestore(ctx context.Context, t *testing.T, c *haCluster) {
	s1, s2, s3 := c.hosts["s1"], c.hosts["s2"], c.hosts["s3"]
	out := s1.s.snapshotCmd(t, "save", "--name", "ha")
	file := snapshotField(t, out, "path")
	want, err := configMapNames(ctx, c.client(s1), "ha")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []*haHost{s1, s2, s3} {
		if err := h.s.stop(); err != nil {
			t.Fatalf("stopping %s: %v", h.name, err)
		}
		removeDir(t, h.etcdDir())
	}
	if out, err := restoreSnapshot(s1.dataDir, file); err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	c.start(s1, "--cluster-init")
	c.token = c.serverToken(s1)
	c.join(s2, s1)
	c.join(s3, s1)
	c.waitVoters(s2, "s1", "s2", "s3")
	for _, h := range []*haHost{s1, s2, s3} {
		got, err := configMapNames(ctx, c.client(h), "ha")
		if err != nil {
			t.Fatal(err)
		}
		for name := range want {
			if !got[name] {
				t.Errorf("%s: %s is not back after the restore", h.name, name)
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s: %d ConfigMaps after the restore, want the snapshot's %d", h.name, len(got), len(want))
		}
	}
}

// runWithTimeout runs cmd and returns its combined output; a command
// still running after d is killed.
func runWithTimeout(cmd *exec.Cmd, d time.Duration) (string, error) {
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(d):
		_ = cmd.Process.Kill()
		<-done
		return out.String(), fmt.Errorf("still running after %v", d)
	}
}

// agentFailsOver: an agent that knows one server (it learns the others
// from the API) keeps its Instances running when that server is killed,
// and goes on through another: it stops an Instance deleted meanwhile and
// starts its replacement.
func agentFailsOver(ctx context.Context, t *testing.T, c *haCluster) {
	requireContainers(t)
	img, err := imagebuild.Busybox()
	if err != nil {
		t.Skip(err)
	}
	s1, s2 := c.hosts["s1"], c.hosts["s2"]
	n := &haHost{name: "n1", ns: nettest.Host(t, "n1"), ip: c.net + ".21", dataDir: t.TempDir()}
	n.link = nettest.Attach(t, c.lan, n.ns, n.ip+"/24")
	if err := imagebuild.WriteTarball(filepath.Join(n.dataDir, "images", "busybox.tar"), "skiff.local/busybox:latest", img); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeLeftovers(n.dataDir) })
	agent := exec.Command("nsenter", "--net="+n.ns, skiffBin, "agent", "--server", s2.url(),
		"--join-token", filepath.Join(s1.dataDir, "join-token"), "--data-dir", n.dataDir, "--node-name", n.name,
		"--runtime", "runc", "--listen", ":10250")
	out := &lockedBuffer{}
	agent.Stdout, agent.Stderr = out, out
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = agent.Process.Signal(syscall.SIGTERM)
		_ = agent.Wait()
		if t.Failed() {
			t.Logf("agent n1:\n%s", lastLines(out.String(), 60))
		}
	})
	kubectl := func(args ...string) string { return s1.s.mustKubectl(t, args...) }
	waitFor(t, 90*time.Second, func() (bool, error) {
		phase, err := s1.s.kubectl("get", "node", "n1", "-o", "jsonpath={.status.phase}")
		return err == nil && phase == "Ready", nil
	})
	// The agent learned every server from the one it was given.
	waitFor(t, 60*time.Second, func() (bool, error) {
		data, err := os.ReadFile(filepath.Join(n.dataDir, "servers"))
		return err == nil && strings.Contains(string(data), s1.url()) && strings.Contains(string(data), c.hosts["s3"].url()), nil
	})
	kubectl("apply", "-f", writeFile(t, "keep.yaml", `apiVersion: skiff.dev/v1alpha1
kind: Workload
metadata:
  name: keep
  namespace: default
spec:
  replicas: 2
  template:
    metadata:
      labels:
        app: keep
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: c
        image: skiff.local/busybox:latest
        command: ["sh", "-c", "exec sleep 100000"]
`))
	// Running Instances of keep: name -> "uid restarts".
	running := func() map[string]string {
		rows := map[string]string{}
		out, err := s1.s.kubectl("get", "instances", "-l", "app=keep", "-o",
			`jsonpath={range .items[*]}{.metadata.name}{"|"}{.status.phase}{"|"}{.metadata.deletionTimestamp}{"|"}{.metadata.uid}{" "}{.status.containerStatuses[0].restartCount}{"\n"}{end}`)
		if err != nil {
			return nil
		}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if f := strings.Split(line, "|"); len(f) == 4 && f[1] == "Running" && f[2] == "" {
				rows[f[0]] = f[3]
			}
		}
		return rows
	}
	var before map[string]string
	waitFor(t, 120*time.Second, func() (bool, error) {
		before = running()
		return len(before) == 2, nil
	})
	names := slices.Sorted(maps.Keys(before))
	victim, kept := names[0], names[1]
	keptUID := strings.Fields(before[kept])[0]
	keptContainers := slices.DeleteFunc(runcContainers(n.dataDir), func(id string) bool { return !strings.HasPrefix(id, keptUID) })
	if len(keptContainers) == 0 {
		t.Fatalf("runc runs no container of %s on n1: %v", kept, runcContainers(n.dataDir))
	}

	s2.s.kill9()
	kubectl("delete", "instance", victim, "--wait=false")
	waitFor(t, 120*time.Second, func() (bool, error) {
		now := running()
		_, stillThere := now[victim]
		return len(now) == 2 && !stillThere, nil
	})
	if after := running(); after[kept] != before[kept] {
		t.Errorf("instance %s: %q -> %q (uid restarts): it restarted while its agent's server was down", kept, before[kept], after[kept])
	}
	for _, id := range keptContainers {
		if !slices.Contains(runcContainers(n.dataDir), id) {
			t.Errorf("container %s of the kept Instance is gone", id)
		}
	}
	c.start(s2)
	c.waitVoters(s1, "s1", "s2", "s3")
}

// runcContainers lists the containers of the agent whose data directory is dataDir.
func runcContainers(dataDir string) []string {
	out, _ := exec.Command("runc", "--root", filepath.Join(dataDir, "runtime", "state"), "list", "-q").Output()
	return strings.Fields(string(out))
}
