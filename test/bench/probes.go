package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"skiff.dev/skiff/nodeagent/bundle"
	"skiff.dev/skiff/nodeagent/usage"
)

// probesBench measures what probes cost the node agent, on runc with the
// real binary: n Instances each serving HTTP (busybox httpd), first
// without probes, then recreated with an HTTP readiness and liveness probe
// every second. Once all are Ready the agent's CPU time (its own and its
// waited-for children's) is read over window, and the containers' (the
// httpd answering). Between the two, execs into one of the Instances are
// timed (exec.go). The server and the agent are separate processes.
func probesBench(bin string, n int, window time.Duration, execs int) ([]result, error) {
	busybox, err := exec.LookPath("busybox")
	if _, errRunc := exec.LookPath("runc"); os.Geteuid() != 0 || err != nil || errRunc != nil {
		return nil, errors.New("needs root, runc and busybox-static")
	}
	nd := &benchNode{n: n}
	defer nd.close()
	if nd.dir, nd.srv, nd.api, err = tempServer(bin, "skiff-bench-probes-"); err != nil {
		return nil, err
	}
	agentDir := filepath.Join(nd.dir, "agent")
	nd.state = filepath.Join(agentDir, "runtime", "state")
	if err := writeImageArchive(busybox, filepath.Join(agentDir, "images", "busybox.tar")); err != nil {
		return nil, err
	}
	host, cleanup, err := benchNetNS("skiff-bench-probes")
	if err != nil {
		return nil, err
	}
	nd.netns = cleanup
	nd.agent = exec.Command(bin, "agent", "--server", nd.srv.url, "--join-token", filepath.Join(nd.dir, "server", "join-token"),
		"--data-dir", agentDir, "--node-name", "bench", "--runtime", "runc", "--listen", "127.0.0.1:0", "--netns", host, "--gossip-bind", "127.0.0.1:0")
	nd.agent.Stdout, nd.agent.Stderr = io.Discard, io.Discard
	if err := nd.agent.Start(); err != nil {
		return nil, err
	}
	nd.exited = make(chan struct{})
	go func() { _ = nd.agent.Wait(); close(nd.exited) }()
	if err := nd.api.waitNodeReady("bench", 60*time.Second); err != nil {
		return nil, err
	}
	if err := nd.api.setInstanceCIDR("bench", "10.88.0.0/24"); err != nil {
		return nil, err
	}

	fmt.Fprintf(os.Stderr, "probes: %d Instances serving HTTP, no probes\n", n)
	quiet, err := nd.phase(false, window)
	if err != nil {
		return nil, err
	}
	execRes, err := execBench(bin, nd.srv.kubeconfig, "bench-0", execs)
	if err != nil {
		return nil, fmt.Errorf("exec: %w", err)
	}
	if err := nd.api.deleteInstances(n, 3*time.Minute); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "probes: %d Instances, HTTP readiness and liveness probes every 1 s\n", n)
	probed, err := nd.phase(true, window)
	if err != nil {
		return nil, err
	}

	nd.tellUnhealthy()
	rate := float64(2 * n) // probes/s: two probes a second per Instance
	pct := func(cpu float64) string { return fmt.Sprintf("%.2f %%", 100*cpu/window.Seconds()) }
	perProbe := func(a, b float64) string {
		return fmt.Sprintf("%.0f µs", (b-a)/window.Seconds()/rate*1e6)
	}
	return append([]result{
		{fmt.Sprintf("agent CPU, %d Instances serving HTTP, no probes", n), pct(quiet.agent), ""},
		{"agent CPU, the same with 2 HTTP probes/s each", pct(probed.agent), ""},
		{fmt.Sprintf("agent CPU per HTTP probe (%.0f probes/s)", rate), perProbe(quiet.agent, probed.agent), ""},
		{"containers' CPU per HTTP probe (httpd)", perProbe(quiet.containers, probed.containers), ""},
		{"API server CPU, no probes / probes", pct(quiet.server) + " / " + pct(probed.server), ""},
		{"machine CPU (all processes), no probes / probes", pct(quiet.machine) + " / " + pct(probed.machine), ""},
		{"restarts: starting / window; not Ready after", fmt.Sprintf("%d / %d; %d", probed.restartsBefore, probed.restarts, probed.notReady), "0 / 0; 0"},
	}, execRes...), nil
}

// benchNode is a server, an agent on runc and the node's network
// namespace; close leaves nothing behind, whatever failed.
type benchNode struct {
	n      int
	dir    string
	srv    *server
	api    *client
	agent  *exec.Cmd
	exited chan struct{} // closed when the agent has ended
	state  string        // the runtime's state root
	netns  func()
}

// cpuUse is CPU seconds over a window, and the Instances' state after it.
type cpuUse struct {
	agent, server, containers, machine float64
	// restartsBefore happened before the window, restarts in it.
	restartsBefore, restarts, notReady int
}

// phase creates the n Instances (with probes or not), waits until all are
// Ready and reads CPU times over window.
func (nd *benchNode) phase(probes bool, window time.Duration) (cpuUse, error) {
	err := inParallel(nd.n, 4, func(i int) error {
		name := fmt.Sprintf("bench-%d", i-1)
		return nd.api.post(nd.api.instances(), name, []byte(httpdInstance(name, probes)))
	})
	if err != nil {
		return cpuUse{}, err
	}
	if err := nd.waitReady(3 * time.Minute); err != nil {
		return cpuUse{}, err
	}
	// The last status writes settle, the last liveness probes start.
	time.Sleep(10 * time.Second)
	_, restarts0, err := nd.census()
	if err != nil {
		return cpuUse{}, err
	}
	m0, _ := usage.ReadNode("/proc")
	a0, s0, c0 := procCPU(nd.agent.Process.Pid), procCPU(nd.srv.cmd.Process.Pid), nd.containersCPU()
	time.Sleep(window)
	a1, s1, c1 := procCPU(nd.agent.Process.Pid), procCPU(nd.srv.cmd.Process.Pid), nd.containersCPU()
	m1, _ := usage.ReadNode("/proc")
	ready, restarts1, err := nd.census()
	if err != nil {
		return cpuUse{}, err
	}
	return cpuUse{agent: a1 - a0, server: s1 - s0, containers: c1 - c0, machine: (m1.CPU - m0.CPU).Seconds(),
		restartsBefore: restarts0, restarts: restarts1 - restarts0, notReady: nd.n - ready}, nil
}

// tellUnhealthy prints the probes' failures the agent recorded (Unhealthy
// Events), counted by message with the addresses left out.
func (nd *benchNode) tellUnhealthy() {
	var events struct {
		Items []struct{ Reason, Message string }
	}
	if err := nd.api.getJSON(nd.api.host+"/api/v1/namespaces/default/events", &events); err != nil {
		fmt.Fprintln(os.Stderr, "probes: events:", err)
		return
	}
	counts, addr := map[string]int{}, regexp.MustCompile(`[0-9]+(\.[0-9]+){3}(:[0-9]+)?`)
	for _, e := range events.Items {
		if e.Reason == "Unhealthy" {
			counts[addr.ReplaceAllString(e.Message, "ADDR")]++
		}
	}
	for msg, c := range counts {
		fmt.Fprintf(os.Stderr, "probes: %d x %s\n", c, msg)
	}
}

// census counts the node's Instances Running and Ready, and its
// containers' restarts.
func (nd *benchNode) census() (ready, restarts int, err error) {
	var list struct {
		Items []struct {
			Status struct {
				Phase             string
				Conditions        []struct{ Type, Status string }
				ContainerStatuses []struct{ RestartCount int } `json:"containerStatuses"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := nd.api.getJSON(nd.api.instances(), &list); err != nil {
		return 0, 0, err
	}
	for _, it := range list.Items {
		for _, cs := range it.Status.ContainerStatuses {
			restarts += cs.RestartCount
		}
		if it.Status.Phase == "Running" && slices.ContainsFunc(it.Status.Conditions, func(c struct{ Type, Status string }) bool {
			return c.Type == "Ready" && c.Status == "True"
		}) {
			ready++
		}
	}
	return ready, restarts, nil
}

// waitReady waits until the node's n Instances are Running and Ready.
func (nd *benchNode) waitReady(limit time.Duration) error {
	ready := 0
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if ready, _, _ = nd.census(); ready == nd.n {
			return nil
		}
	}
	return fmt.Errorf("%d of %d Instances Ready after %s", ready, nd.n, limit)
}

// httpdInstance is an Instance on the bench node serving HTTP on 8080
// with busybox httpd, probed there (readiness and liveness, every second)
// when probes is set. Liveness waits 5 s: starting 100 containers at once
// on 2 cores can keep httpd from listening for the 3 s a liveness probe
// allows. The shell first installs busybox's applets (the image links
// only sh, sleep and echo), `true` among them for exec.
func httpdInstance(name string, probes bool) string {
	probe := ""
	if probes {
		probe = `,"readinessProbe":{"httpGet":{"path":"/","port":8080},"periodSeconds":1},` +
			`"livenessProbe":{"httpGet":{"path":"/","port":8080},"initialDelaySeconds":5,"periodSeconds":1,"failureThreshold":3}`
	}
	return fmt.Sprintf(`{"apiVersion":"skiff.dev/v1alpha1","kind":"Instance","metadata":{"name":%q},"spec":{"nodeName":"bench","terminationGracePeriodSeconds":1,`+
		`"containers":[{"name":"main","image":%q,"args":["busybox --install -s /bin && mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"],`+
		`"ports":[{"name":"http","containerPort":8080}]%s}]}}`, name, benchImage, probe)
}

// procCPU is a process's user and system CPU seconds, with those of its
// children it waited for (the runtime's runs, ended shims).
func procCPU(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses: utime,
	// stime, cutime and cstime are the 12th to 15th.
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
	var ticks float64
	for _, s := range f[11:15] {
		v, _ := strconv.ParseFloat(s, 64)
		ticks += v
	}
	return ticks / 100 // USER_HZ
}

// containersCPU is the CPU seconds of this node's containers, from their
// cgroups (v1 or v2) as the agent reads them.
func (nd *benchNode) containersCPU() float64 {
	cg := usage.HostCgroups()
	var total time.Duration
	for _, id := range nd.containers() {
		if u, err := cg.Container(bundle.CgroupsPath("", id)); err == nil {
			total += u.CPU
		}
	}
	return total.Seconds()
}

// containers lists the ids the runtime holds for this node.
func (nd *benchNode) containers() []string {
	out, err := exec.Command("runc", "--root", nd.state, "list", "-q").Output()
	if err != nil {
		return nil
	}
	return strings.Fields(string(out))
}

// close deletes the Instances through the agent if it still runs, stops
// it and the server, then force-deletes what containers remain (their
// shims end with them), unmounts what is left under the directory and
// removes it and the node's network namespace.
func (nd *benchNode) close() {
	if nd.exited != nil {
		select {
		case <-nd.exited:
		default:
			_ = nd.api.deleteInstances(nd.n, 2*time.Minute)
			_ = nd.agent.Process.Signal(syscall.SIGTERM)
			select {
			case <-nd.exited:
			case <-time.After(30 * time.Second):
				_ = nd.agent.Process.Kill()
				<-nd.exited
			}
		}
	}
	if nd.srv != nil {
		nd.srv.stop()
	}
	if nd.state != "" {
		for _, id := range nd.containers() {
			_ = exec.Command("runc", "--root", nd.state, "delete", "--force", id).Run()
		}
	}
	if nd.dir != "" {
		unmountUnder(nd.dir)
		_ = os.RemoveAll(nd.dir)
	}
	if nd.netns != nil {
		nd.netns()
	}
}

// unmountUnder detaches every mount at or below dir, the deepest first.
func unmountUnder(dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			points = append(points, f[4])
		}
	}
	slices.Sort(points)
	for _, p := range slices.Backward(points) {
		_ = unix.Unmount(p, unix.MNT_DETACH)
	}
}
