package e2e

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"skiff.dev/skiff/nodeagent/image/imagebuild"
	"skiff.dev/skiff/nodeagent/network/nettest"
)

// sampleImages writes the samples' image (as `make run` does) and a
// second tag of it into the local agent's air-gap images of dataDir.
func sampleImages(t *testing.T, dataDir string) {
	t.Helper()
	img, err := imagebuild.Busybox()
	if errors.Is(err, imagebuild.ErrNoStaticBusybox) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(dataDir, "agent", "images")
	for file, ref := range map[string]string{"busybox.tar": "skiff.local/busybox:latest", "busybox-v2.tar": "skiff.local/busybox:v2"} {
		if err := imagebuild.WriteTarball(filepath.Join(dir, file), ref, img); err != nil {
			t.Fatal(err)
		}
	}
}

// startLocalNode runs `skiff server` with its local agent on runc, the
// node "local" in a network namespace host of its own with the address
// hostAddr, and the samples' images; it returns when the node is Ready.
func startLocalNode(t *testing.T, hostAddr string, extra ...string) (s *server, host string) {
	t.Helper()
	requireContainers(t)
	dataDir := t.TempDir()
	sampleImages(t, dataDir)
	host = nodeHost(t, hostAddr)
	args := append([]string{"--runtime", "runc", "--agent-listen", "127.0.0.1:0", "--node-name", "local", "--agent-netns", host}, extra...)
	s = startServer(t, dataDir, "127.0.0.1:0", args...)
	waitFor(t, 60*time.Second, func() (bool, error) {
		phase, err := s.kubectl("get", "node", "local", "-o", "jsonpath={.status.phase}")
		return err == nil && phase == "Ready", nil
	})
	return s, host
}

// instancesOf lists "phase image" of every live (not terminating)
// Instance of app.
func (s *server) instancesOf(t *testing.T, app string) []string {
	t.Helper()
	out, err := s.kubectl("get", "instances", "-l", "app="+app, "-o",
		`jsonpath={range .items[*]}{.metadata.deletionTimestamp}{"|"}{.status.phase}{"|"}{.spec.containers[0].image}{"\n"}{end}`)
	if err != nil {
		return nil
	}
	var rows []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Split(line, "|"); len(f) == 3 && f[0] == "" {
			rows = append(rows, f[1]+" "+f[2])
		}
	}
	return rows
}

func (s *server) waitInstances(t *testing.T, app string, n int, phase, image string) {
	t.Helper()
	waitFor(t, 120*time.Second, func() (bool, error) {
		rows := s.instancesOf(t, app)
		match := 0
		for _, r := range rows {
			if r == phase+" "+image {
				match++
			}
		}
		return len(rows) == n && match == n, nil
	})
}

// TestWorkloadWithKubectl is the tour: the sample Workload applied with
// kubectl runs 3 real containers under runc, scales to 5, rolls out a new
// image, tells its story in `kubectl describe`, rolls back from an image
// that does not exist, and goes with its Instances on `kubectl delete`.
func TestWorkloadWithKubectl(t *testing.T) {
	s, host := startLocalNode(t, "10.250.1.1/24")
	plan, err := exec.Command(skiffBin, "plan", "--kubeconfig", s.kubeconfig, "-f", "../../config/samples/workload.yaml").CombinedOutput()
	if err != nil || strings.Count(string(plan), "Create  (new)") != 3 || !strings.Contains(string(plan), "local") {
		t.Fatalf("skiff plan -f config/samples/workload.yaml: %v\n%s", err, plan)
	}
	s.mustKubectl(t, "apply", "-f", "../../config/samples/workload.yaml")
	s.waitInstances(t, "web", 3, "Running", "skiff.local/busybox:latest")
	// Each serves on its own address, reached from the node.
	for _, ip := range s.instanceIPs(t, "app=web", 3) {
		nettest.Eventually(t, host, "http://"+ip+":8080/", "hello from skiff")
	}
	get := s.mustKubectl(t, "get", "workload", "web")
	if row := rowFields(get, 0, "web"); len(row) < 3 || row[1] != "3" || row[2] != "3" {
		waitFor(t, 30*time.Second, func() (bool, error) {
			get = s.mustKubectl(t, "get", "workload", "web")
			row := rowFields(get, 0, "web")
			return len(row) >= 3 && row[1] == "3" && row[2] == "3", nil
		})
	}

	s.mustKubectl(t, "scale", "workload", "web", "--replicas=5")
	s.waitInstances(t, "web", 5, "Running", "skiff.local/busybox:latest")

	s.mustKubectl(t, "patch", "workload", "web", "--type=json", "-p",
		`[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"skiff.local/busybox:v2"}]`)
	// The rollout, watched from outside: never more than 5+2 live (25%
	// surge of 5 rounds up to 2), and it ends with every Instance on v2.
	waitFor(t, 120*time.Second, func() (bool, error) {
		rows := s.instancesOf(t, "web")
		if len(rows) > 7 {
			t.Fatalf("%d live instances during the rollout, above 5 + maxSurge 2:\n%s", len(rows), strings.Join(rows, "\n"))
		}
		v2 := 0
		for _, r := range rows {
			if r == "Running skiff.local/busybox:v2" {
				v2++
			}
		}
		return len(rows) == 5 && v2 == 5, nil
	})
	waitFor(t, 60*time.Second, func() (bool, error) {
		out := s.mustKubectl(t, "describe", "workload", "web")
		for _, reason := range []string{"ScalingUp", "RolloutStarted", "ScalingDown", "RolloutComplete"} {
			if !strings.Contains(out, reason) {
				return false, nil
			}
		}
		return true, nil
	})

	// A bad image never becomes ready: with autoRollback the Workload
	// goes back to the revision that ran, once the deadline passes.
	s.mustKubectl(t, "patch", "workload", "web", "--type=merge", "-p", `{"spec":{"autoRollback":true,"progressDeadlineSeconds":5}}`)
	s.mustKubectl(t, "patch", "workload", "web", "--type=json", "-p",
		`[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"skiff.local/busybox:missing"}]`)
	waitFor(t, 120*time.Second, func() (bool, error) {
		image, err := s.kubectl("get", "workload", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}")
		return err == nil && image == "skiff.local/busybox:v2", nil
	})
	if out := s.mustKubectl(t, "describe", "workload", "web"); !strings.Contains(out, "RolledBack") || !strings.Contains(out, "ProgressDeadlineExceeded") {
		t.Errorf("kubectl describe after the rollback:\n%s", out)
	}
	s.waitInstances(t, "web", 5, "Running", "skiff.local/busybox:v2")

	s.mustKubectl(t, "delete", "workload", "web", "--timeout=120s")
	waitFor(t, 120*time.Second, func() (bool, error) {
		out, err := s.kubectl("get", "instances", "-l", "app=web", "-o", "name")
		return err == nil && strings.TrimSpace(out) == "", nil
	})
}
