package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestProbes on runc: a readiness probe over HTTP decides when a
// Workload's Instances are available, and a rollout whose new Instances
// never pass it does not proceed (the old ones keep serving); an exec
// liveness probe that starts failing restarts the container, with an
// Unhealthy Event naming the probe and its output.
func TestProbes(t *testing.T) {
	s, _ := startLocalNode(t, "10.250.5.1/24")

	// httpd serves /ready once the container made the file.
	web := func(readyPath, revision string) string {
		return `apiVersion: skiff.dev/v1alpha1
kind: Workload
metadata: {name: probed}
spec:
  replicas: 2
  template:
    metadata: {labels: {app: probed}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: web
        image: skiff.local/busybox:latest
        command: [sh, -c, 'mkdir -p /www && echo ok > /www/ready && exec httpd -f -p 8080 -h /www']
        env: [{name: REVISION, value: "` + revision + `"}]
        ports: [{name: http, containerPort: 8080}]
        readinessProbe:
          httpGet: {path: ` + readyPath + `, port: http}
          periodSeconds: 1
          failureThreshold: 1
`
	}
	s.mustKubectl(t, "apply", "-f", writeFile(t, "probed.yaml", web("/ready", "1")))
	waitFor(t, 120*time.Second, func() (bool, error) {
		out, err := s.kubectl("get", "workload", "probed", "-o", "jsonpath={.status.availableReplicas}")
		return err == nil && out == "2", nil
	})
	ready := s.mustKubectl(t, "get", "instances", "-l", "app=probed", "-o", "jsonpath={range .items[*]}{.status.containerStatuses[0].ready}{' '}{end}")
	if strings.TrimSpace(ready) != "true true" {
		t.Fatalf("containers' ready %q, want both true", ready)
	}

	// A new revision whose readiness never passes: one surge Instance
	// runs but is never ready, and the two old ones stay.
	s.mustKubectl(t, "apply", "-f", writeFile(t, "probed2.yaml", web("/missing", "2")))
	var newInst string
	waitFor(t, 90*time.Second, func() (bool, error) {
		out, err := s.kubectl("get", "instances", "-l", "app=probed", "-o",
			`jsonpath={range .items[*]}{.metadata.name}{"|"}{.spec.containers[0].env[0].value}{"|"}{.status.phase}{"|"}{.status.containerStatuses[0].state.running.startedAt}{"\n"}{end}`)
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Split(line, "|"); err == nil && len(f) == 4 && f[1] == "2" && f[2] == "Running" && f[3] != "" {
				newInst = f[0]
				return true, nil
			}
		}
		return false, nil
	})
	waitFor(t, 30*time.Second, func() (bool, error) {
		events, err := s.kubectl("get", "events", "--field-selector", "involvedObject.name="+newInst, "-o", `jsonpath={range .items[*]}{.reason}: {.message}{"\n"}{end}`)
		return err == nil && strings.Contains(events, "Unhealthy: ") && strings.Contains(events, "Readiness probe failed: HTTP probe failed with statuscode: 404"), nil
	})
	// Some failed periods later the rollout still has not gone on (what
	// must not happen needs a window).
	time.Sleep(3 * time.Second)
	out := s.mustKubectl(t, "get", "instances", "-l", "app=probed", "-o",
		`jsonpath={range .items[*]}{.spec.containers[0].env[0].value}{"|"}{.status.containerStatuses[0].ready}{"\n"}{end}`)
	var oldReady, newCount int
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		switch line {
		case "1|true":
			oldReady++
		case "2|false":
			newCount++
		default:
			t.Errorf("an Instance %q: want old ready or new not ready", line)
		}
	}
	if oldReady != 2 || newCount != 1 {
		t.Errorf("old ready %d, new %d; want the 2 old ones kept and 1 new one waiting:\n%s", oldReady, newCount, out)
	}
	if avail := s.mustKubectl(t, "get", "workload", "probed", "-o", "jsonpath={.status.availableReplicas}"); avail != "2" {
		t.Errorf("availableReplicas %s during the stalled rollout, want 2", avail)
	}
	s.mustKubectl(t, "delete", "workload", "probed", "--timeout=60s")

	// Liveness: healthy for about three seconds, then not.
	s.mustKubectl(t, "apply", "-f", writeFile(t, "live.yaml", `apiVersion: skiff.dev/v1alpha1
kind: Instance
metadata: {name: live}
spec:
  # A liveness kill restarts it even though it exits 0 on SIGTERM.
  restartPolicy: OnFailure
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: skiff.local/busybox:latest
    command: [sh, -c, 'echo > /tmp/healthy; sleep 3; rm /tmp/healthy; trap "exit 0" TERM; sleep 3600 & wait']
    livenessProbe:
      exec: {command: [cat, /tmp/healthy]}
      periodSeconds: 1
      failureThreshold: 2
`))
	waitFor(t, 90*time.Second, func() (bool, error) {
		out, err := s.kubectl("get", "instance", "live", "-o", "jsonpath={.status.containerStatuses[0].restartCount}")
		n, _ := strconv.Atoi(out)
		return err == nil && n >= 1, nil
	})
	events := s.mustKubectl(t, "get", "events", "--field-selector", "involvedObject.name=live", "-o", `jsonpath={range .items[*]}{.reason}: {.message}{"\n"}{end}`)
	if !strings.Contains(events, `Unhealthy: container "main": Liveness probe failed: command "cat /tmp/healthy" exited with 1`) {
		t.Errorf("events:\n%s\nwant an Unhealthy Event with the probe's command and exit code", events)
	}
	s.mustKubectl(t, "delete", "instance", "live", "--timeout=60s")
}
