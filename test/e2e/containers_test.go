package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"skiff.dev/skiff/nodeagent/image/imagebuild"
	"skiff.dev/skiff/nodeagent/image/imagetest"
	"skiff.dev/skiff/nodeagent/network/nettest"
)

// requireContainers skips unless real containers can run here.
func requireContainers(t *testing.T) {
	t.Helper()
	requireE2E(t)
	if os.Geteuid() != 0 {
		t.Skip("running containers needs root")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("runc is not installed (make test installs it)")
	}
	nettest.Skip(t)
}

// nodeHost is a network namespace that acts as an agent's host: the
// bridge, rules, routes and hostPorts of Instance networking live there
// rather than on the machine. Its node address, addr (a CIDR such as
// 10.250.1.1/24), is on a link of its own.
func nodeHost(t *testing.T, addr string) string {
	t.Helper()
	host := nettest.Host(t, "e2e")
	nettest.Uplink(t, host, addr)
	return host
}

// busyboxImage serves a busybox image from a registry on loopback and
// returns the registry's host and the image reference.
func busyboxImage(t *testing.T) (host, ref string) {
	host = imagetest.Registry(t)
	img := imagetest.Busybox(t, v1.Config{Env: []string{"PATH=/bin"}, Entrypoint: []string{"sh", "-c"}})
	return host, imagetest.Push(t, host, "busybox:e2e", img)
}

func boundInstanceYAML(name, node, image, script string) string {
	return fmt.Sprintf(`apiVersion: skiff.dev/v1alpha1
kind: Instance
metadata:
  name: %s
  namespace: default
spec:
  nodeName: %s
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: %s
    args: [%q]
`, name, node, image, script)
}

func (s *server) waitPhase(t *testing.T, name, phase string) {
	t.Helper()
	waitFor(t, 90*time.Second, func() (bool, error) {
		got, err := s.kubectl("get", "instance", name, "-o", "jsonpath={.status.phase}")
		return err == nil && got == phase, nil
	})
}

// TestServerRunsContainers: `skiff server` with its local agent runs a
// bound Instance as a real container; kubectl shows it Running and both
// `skiff logs` and kubectl's raw log request read its output.
func TestServerRunsContainers(t *testing.T) {
	requireContainers(t)
	host, ref := busyboxImage(t)
	dir := t.TempDir()
	// The image make run imports for the samples and the README.
	img, err := imagebuild.Busybox()
	if err != nil {
		t.Skip(err)
	}
	if err := imagebuild.WriteTarball(filepath.Join(dir, "agent", "images", "busybox.tar"), "skiff.local/busybox:latest", img); err != nil {
		t.Fatal(err)
	}
	// A short request timeout: a followed log must outlive it.
	const requestTimeout = 3 * time.Second
	s := startServer(t, dir, "127.0.0.1:0", "--request-timeout", requestTimeout.String(),
		"--runtime", "runc", "--insecure-registry", host, "--agent-listen", "127.0.0.1:0", "--node-name", "local",
		"--agent-netns", nodeHost(t, "10.250.1.1/24"))
	waitFor(t, 60*time.Second, func() (bool, error) {
		phase, err := s.kubectl("get", "node", "local", "-o", "jsonpath={.status.phase}")
		return err == nil && phase == "Ready", nil
	})
	manifest := writeFile(t, "web.yaml", boundInstanceYAML("web", "local", ref, "echo hello from skiff; exec sleep 1000"))
	s.mustKubectl(t, "apply", "-f", manifest)
	s.waitPhase(t, "web", "Running")
	list := s.mustKubectl(t, "get", "instances")
	if row := rowFields(list, 0, "web"); len(row) == 0 || !strings.Contains(strings.Join(row, " "), "Running") {
		t.Errorf("kubectl get instances:\n%s", list)
	}

	var logs string
	waitFor(t, 30*time.Second, func() (bool, error) {
		out, err := exec.Command(skiffBin, "logs", "--kubeconfig", s.kubeconfig, "web").CombinedOutput()
		logs = string(out)
		return err == nil && logs == "hello from skiff\n", nil
	})

	// kubectl's raw request with follow streams: read the first line, then stop.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kubectl", "--kubeconfig", s.kubeconfig, "get", "--raw",
		"/apis/skiff.dev/v1alpha1/namespaces/default/instances/web/log?follow=true")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	cancel()
	_ = cmd.Wait()
	if line != "hello from skiff\n" {
		t.Errorf("kubectl get --raw .../log?follow=true: %q, %v", line, err)
	}
	s.mustKubectl(t, "delete", "instance", "web", "--timeout=60s")

	// A followed log is long-running: it streams past the request timeout.
	s.mustKubectl(t, "apply", "-f", writeFile(t, "ticker.yaml", boundInstanceYAML("ticker", "local", ref,
		"trap 'exit 0' TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.5; done")))
	s.waitPhase(t, "ticker", "Running")
	followPastTimeout(t, s, "ticker", 3*requestTimeout)
	s.mustKubectl(t, "delete", "instance", "ticker", "--timeout=60s")

	// Every QoS class runs on runc, Guaranteed too, whatever this host lets
	// the agent set for the OOM killer (it said what in the Node's status).
	resources := map[string]string{
		"Guaranteed": "    resources:\n      limits: {cpu: 100m, memory: 32Mi}\n",
		"Burstable":  "    resources:\n      requests: {cpu: 50m, memory: 16Mi}\n      limits: {memory: 64Mi}\n",
		"BestEffort": "",
	}
	for qos, res := range resources {
		name := "qos-" + strings.ToLower(qos)
		s.mustKubectl(t, "apply", "-f", writeFile(t, name+".yaml", boundInstanceYAML(name, "local", ref, "exec sleep 1000")+res))
	}
	for qos := range resources {
		name := "qos-" + strings.ToLower(qos)
		s.waitPhase(t, name, "Running")
		if got := s.mustKubectl(t, "get", "instance", name, "-o", "jsonpath={.status.qosClass}"); got != qos {
			t.Errorf("%s: qosClass %q, want %s", name, got, qos)
		}
	}
	if limited := s.mustKubectl(t, "get", "node", "local", "-o", `jsonpath={.status.conditions[?(@.type=="OOMScoreLimited")].message}`); limited != "" {
		t.Logf("this host limits oom_score_adj: %s", limited)
	}
	s.mustKubectl(t, "delete", "instance", "qos-guaranteed", "qos-burstable", "qos-besteffort", "--timeout=60s")

	// The README's "Run a container", verbatim.
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "kubectl apply -f - <<YAML\n")
	manifest, _, ok2 := strings.Cut(rest, "\nYAML\n")
	if !ok || !ok2 {
		t.Fatal(`README.md: no "kubectl apply -f - <<YAML" example`)
	}
	s.mustKubectl(t, "apply", "-f", writeFile(t, "readme.yaml", manifest))
	s.waitPhase(t, "hello-loop", "Running")
	if qos := s.mustKubectl(t, "get", "instance", "hello-loop", "-o", "jsonpath={.status.qosClass}"); qos != "Guaranteed" {
		t.Errorf("the README's Instance: QoS %q, want Guaranteed", qos)
	}
	waitFor(t, 30*time.Second, func() (bool, error) {
		out, err := exec.Command(skiffBin, "logs", "--kubeconfig", s.kubeconfig, "hello-loop").CombinedOutput()
		return err == nil && strings.HasPrefix(string(out), "hello from skiff\n"), nil
	})
	start := time.Now()
	s.mustKubectl(t, "delete", "instance", "hello-loop", "--timeout=60s")
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("deleting the README's Instance took %s: its command should end on SIGTERM", took)
	}
}

// agentProcess is a `skiff agent` run by a test.
type agentProcess struct {
	cmd *exec.Cmd
	out *strings.Builder
}

func startAgent(t *testing.T, s *server, args ...string) *agentProcess {
	t.Helper()
	base := []string{"agent", "--server", s.url, "--join-token", filepath.Join(s.dataDir, "join-token"), "--listen", "127.0.0.1:0", "--gossip-bind", "127.0.0.1:0"}
	cmd := exec.Command(skiffBin, append(base, args...)...)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := &agentProcess{cmd: cmd, out: out}
	t.Cleanup(func() {
		if a.cmd.ProcessState == nil {
			_ = a.cmd.Process.Signal(syscall.SIGTERM)
			_ = a.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("agent output:\n%s", out.String())
		}
	})
	return a
}

func (a *agentProcess) kill9(t *testing.T) {
	t.Helper()
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = a.cmd.Wait()
}

// TestAgentKill9Readopts kills the agent with SIGKILL while containers
// run: they keep running, and the restarted agent adopts them without a
// restart; a container whose Instance vanished meanwhile is removed.
func TestAgentKill9Readopts(t *testing.T) {
	requireContainers(t)
	host, ref := busyboxImage(t)
	s := startServer(t, t.TempDir(), "127.0.0.1:0")
	dataDir := t.TempDir()
	// Gossip off: the orphan's deletion below takes longer than the few
	// seconds a restart has before gossip declares the node dead (that
	// case is TestGossipCluster's); this test is about re-adoption.
	args := []string{"--data-dir", dataDir, "--node-name", "n1", "--runtime", "runc", "--insecure-registry", host, "--lease-interval", "500ms",
		"--netns", nodeHost(t, "10.250.1.1/24"), "--gossip-bind", ""}
	agent := startAgent(t, s, args...)
	for _, name := range []string{"keeper", "orphan"} {
		s.mustKubectl(t, "apply", "-f", writeFile(t, name+".yaml", boundInstanceYAML(name, "n1", ref, "echo started; exec sleep 1000")))
	}
	s.waitPhase(t, "keeper", "Running")
	s.waitPhase(t, "orphan", "Running")
	before := s.mustKubectl(t, "get", "instance", "keeper", "-o", "jsonpath={.status.containerStatuses[0].state.running.startedAt}")
	keeperIP := s.mustKubectl(t, "get", "instance", "keeper", "-o", "jsonpath={.status.instanceIP}")
	if _, err := netip.ParseAddr(keeperIP); err != nil {
		t.Fatalf("keeper's instanceIP %q: %v", keeperIP, err)
	}
	runc := func(args ...string) string {
		out, _ := exec.Command("runc", append([]string{"--root", filepath.Join(dataDir, "runtime", "state")}, args...)...).CombinedOutput()
		return string(out)
	}
	orphanUID := s.mustKubectl(t, "get", "instance", "orphan", "-o", "jsonpath={.metadata.uid}")

	// The binary carries the small shim (make build embeds cmd/skiff-shim).
	if shims, _ := filepath.Glob(filepath.Join(dataDir, "runtime", "skiff-shim-*")); len(shims) != 1 {
		t.Errorf("shim executables in the runtime dir: %q, want the embedded one", shims)
	}
	agent.kill9(t)
	if list := runc("list"); strings.Count(list, "running") != 2 {
		t.Fatalf("after kill -9 of the agent, runc list:\n%s", list)
	}
	// The orphan's Instance vanishes while the agent is down.
	s.mustKubectl(t, "patch", "instance", "orphan", "--type=merge", "-p", `{"metadata":{"finalizers":null}}`)
	s.mustKubectl(t, "delete", "instance", "orphan", "--timeout=30s")

	startAgent(t, s, args...)
	t.Cleanup(func() { // before this agent stops: remove the containers
		_, _ = s.kubectl("delete", "instances", "--all", "--timeout=60s")
	})
	waitFor(t, 60*time.Second, func() (bool, error) {
		return !strings.Contains(runc("list"), orphanUID), nil
	})
	// Its network goes with it; the keeper keeps its address.
	waitFor(t, 60*time.Second, func() (bool, error) {
		_, err := os.Stat(filepath.Join(dataDir, "network", "netns", orphanUID))
		return os.IsNotExist(err), nil
	})
	s.waitPhase(t, "keeper", "Running")
	if ip := s.mustKubectl(t, "get", "instance", "keeper", "-o", "jsonpath={.status.instanceIP}"); ip != keeperIP {
		t.Errorf("keeper's instanceIP after re-adoption %q, want %q", ip, keeperIP)
	}
	after := s.mustKubectl(t, "get", "instance", "keeper", "-o", "jsonpath={.status.containerStatuses[0].state.running.startedAt} {.status.containerStatuses[0].restartCount}")
	if after != before+" 0" {
		t.Errorf("after re-adoption: startedAt and restartCount %q, want %q", after, before+" 0")
	}
	out, err := exec.Command(skiffBin, "logs", "--kubeconfig", s.kubeconfig, "keeper").CombinedOutput()
	if err != nil || string(out) != "started\n" {
		t.Errorf("keeper's log after re-adoption: %q, %v (want one start)", out, err)
	}
}

// followPastTimeout follows inst's log with skiff logs -f and fails unless
// lines still arrive after for has passed.
func followPastTimeout(t *testing.T, s *server, inst string, after time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), after+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, skiffBin, "logs", "-f", "--kubeconfig", s.kubeconfig, inst)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	r := bufio.NewReader(out)
	lines := 0
	for time.Since(start) < after {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("skiff logs -f %s ended after %v and %d lines: %v %s", inst, time.Since(start).Round(time.Millisecond), lines, err, stderr.String())
		}
		if !strings.HasPrefix(line, "tick ") {
			t.Fatalf("skiff logs -f %s: %q", inst, line)
		}
		lines++
	}
}
