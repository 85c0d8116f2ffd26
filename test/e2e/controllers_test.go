package e2e

import (
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lockedBuffer collects a process's output while tests read it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startControllers(t *testing.T, s *server) (*exec.Cmd, *lockedBuffer) {
	t.Helper()
	out := &lockedBuffer{}
	cmd := exec.Command(skiffBin, "controllers", "--kubeconfig", s.kubeconfig, "--leader-elect", "--gossip-bind", "127.0.0.1:0")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		}
		if t.Failed() {
			t.Logf("skiff controllers pid %d:\n%s", cmd.Process.Pid, out.String())
		}
	})
	return cmd, out
}

// acquired is what client-go's leader election logs on winning.
const acquired = `"Successfully acquired lease"`

// TestControllersLeaderElection runs two `skiff controllers
// --leader-elect` against a server without its own: one leads and
// reconciles; killed with SIGKILL, the other takes over within 15 s and
// reconciles in its place.
func TestControllersLeaderElection(t *testing.T) {
	s := startServer(t, t.TempDir(), "127.0.0.1:0", "--disable-agent", "--disable-controllers")
	a, aOut := startControllers(t, s)
	b, bOut := startControllers(t, s)
	var leader *exec.Cmd
	var standbyOut *lockedBuffer
	waitFor(t, 60*time.Second, func() (bool, error) {
		switch {
		case strings.Contains(aOut.String(), acquired):
			leader, standbyOut = a, bOut
		case strings.Contains(bOut.String(), acquired):
			leader, standbyOut = b, aOut
		}
		return leader != nil, nil
	})
	s.mustKubectl(t, "apply", "-f", writeFile(t, "w.yaml", workloadYAML("elected", "", "elected", "replicas: 1")))
	waitFor(t, 60*time.Second, func() (bool, error) { return len(s.instancesOf(t, "elected")) == 1, nil })
	if strings.Contains(standbyOut.String(), acquired) {
		t.Fatal("both controllers lead")
	}

	if err := leader.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = leader.Wait()
	killed := time.Now()
	waitFor(t, 30*time.Second, func() (bool, error) { return strings.Contains(standbyOut.String(), acquired), nil })
	handover := time.Since(killed)
	t.Logf("hand-over after SIGKILL of the leader: %s", handover.Round(time.Millisecond))
	if handover > 15*time.Second {
		t.Errorf("hand-over took %s, want within 15s", handover)
	}
	s.mustKubectl(t, "scale", "workload", "elected", "--replicas=3")
	waitFor(t, 60*time.Second, func() (bool, error) { return len(s.instancesOf(t, "elected")) == 3, nil })
}

// TestCascadeWithKubectl: `kubectl delete --cascade=orphan|foreground|
// background` of a Workload leave or take its Instances as in Kubernetes;
// the controllers' health and metrics are on the server's endpoints.
func TestCascadeWithKubectl(t *testing.T) {
	s := startServer(t, t.TempDir(), "127.0.0.1:0")
	for _, name := range []string{"orphaned", "foreground", "background"} {
		s.mustKubectl(t, "apply", "-f", writeFile(t, name+".yaml", workloadYAML(name, "", name, "replicas: 2")))
	}
	for _, name := range []string{"orphaned", "foreground", "background"} {
		waitFor(t, 60*time.Second, func() (bool, error) { return len(s.instancesOf(t, name)) == 2, nil })
	}
	s.mustKubectl(t, "delete", "workload", "orphaned", "--cascade=orphan", "--timeout=60s")
	s.absent(t, "workload", "orphaned")
	owners := s.mustKubectl(t, "get", "instances", "-l", "app=orphaned", "-o", "jsonpath={range .items[*]}{.metadata.name}={.metadata.ownerReferences}{\"\\n\"}{end}")
	if lines := strings.Split(strings.TrimSpace(owners), "\n"); len(lines) != 2 || strings.Contains(owners, "Workload") {
		t.Fatalf("orphaned instances:\n%s", owners)
	}

	// kubectl waits for a foreground deletion to finish: the Instances
	// are gone by the time the Workload is.
	s.mustKubectl(t, "delete", "workload", "foreground", "--cascade=foreground", "--timeout=60s")
	s.absent(t, "workload", "foreground")
	if rows := s.instancesOf(t, "foreground"); len(rows) != 0 {
		t.Fatalf("instances left after a foreground delete: %v", rows)
	}

	// The controllers report on the server's /health and /metrics.
	waitFor(t, 30*time.Second, func() (bool, error) {
		health, err := s.kubectl("get", "--raw", "/health")
		return err == nil && strings.Contains(health, `"controllers":{"status":"ok"}`) && strings.Contains(health, `"scheduler":{"status":"ok"}`), nil
	})
	metrics := s.mustKubectl(t, "get", "--raw", "/metrics")
	for _, name := range []string{
		`skiff_schedule_attempts_total{result="unschedulable"}`, "skiff_scheduling_duration_seconds_count",
		`skiff_reconciliation_cycles_total{controller="workload"}`, "skiff_reconciliation_duration_seconds_count",
		"skiff_reconciliation_errors_total", "skiff_drift_magnitude", "skiff_workloads 1", `skiff_instances{phase="Pending"} 4`,
		"skiff_nodes 0", "skiff_nodes_ready 0", "skiff_cluster_capacity_cpu_cores", "skiff_cluster_allocatable_cpu_cores",
		"skiff_cluster_allocatable_memory_bytes",
	} {
		if !strings.Contains(metrics, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}

	s.mustKubectl(t, "delete", "workload", "background", "--cascade=background", "--timeout=60s")
	waitFor(t, 60*time.Second, func() (bool, error) {
		out, err := s.kubectl("get", "instances", "-l", "app=background", "-o", "name")
		return err == nil && strings.TrimSpace(out) == "", nil
	})
}
