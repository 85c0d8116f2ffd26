package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"skiff.dev/skiff/nodeagent/network/nettest"
)

// TestTwoTier is the README's "Two tiers", run line by line as a user
// would after `make run`: config/samples/two-tier.yaml applied as shipped
// (a web tier with readiness and liveness probes, its settings from a
// ConfigMap and its password from a Secret, both mounted; a key-value
// store on an emptyDir, published on a hostPort) gets ready; a note
// stored through one web replica with the Secret's password is read
// through another and from the store itself, and refused without it.
// Then a rollout whose new Instance never gets ready stops at that
// Instance: the three old ones stay ready and available throughout; once
// its ConfigMap is fixed the rollout completes, and the store kept the
// note.
func TestTwoTier(t *testing.T) {
	s, host := startLocalNode(t, "10.250.14.1/24")
	tour := newReadmeTour(t, s, host, "### Two tiers\n")
	// A failed run leaves no containers behind (the agent keeps them
	// over its own restarts, so stopping the server would not).
	t.Cleanup(func() {
		if t.Failed() {
			s.runKubectl("delete", "-f", "../../config/samples/two-tier.yaml", "--timeout=60s", "--ignore-not-found")
			s.runKubectl("delete", "configmap", "guestbook-settings-v2", "--ignore-not-found")
			waitFor(t, 60*time.Second, func() (bool, error) {
				out, err := s.kubectl("get", "instances", "-o", "name")
				return err == nil && strings.TrimSpace(out) == "", nil
			})
		}
	})
	// The README's tour applies every sample at once: the directory,
	// this sample with the others, passes the server's validation.
	if out := s.mustKubectl(t, "apply", "--dry-run=server", "-f", "../../config/samples/"); !strings.Contains(out, "workload.skiff.dev/guestbook created (server dry run)") {
		t.Errorf("kubectl apply --dry-run=server -f config/samples/:\n%s", out)
	}

	out := tour.next("kubectl apply -f config/samples/two-tier.yaml")
	for _, want := range []string{"configmap/guestbook-settings created", "configmap/kv-scripts created", "configmap/guestbook-scripts created",
		"secret/guestbook-password created", "workload.skiff.dev/kv created", "workload.skiff.dev/guestbook created"} {
		if !strings.Contains(out, want) {
			t.Errorf("apply: no %q in:\n%s", want, out)
		}
	}
	if out := tour.next("kubectl wait --for=condition=Available"); strings.Count(out, "condition met") != 2 {
		t.Fatalf("kubectl wait: %s", out)
	}
	get := tour.next("kubectl get wl kv guestbook")
	for name, want := range map[string]string{"kv": "1 1 1 1", "guestbook": "3 3 3 3"} {
		if row := rowFields(get, 0, name); len(row) < 5 || strings.Join(row[1:5], " ") != want {
			t.Errorf("kubectl get wl: %s: %q, want DESIRED READY UP-TO-DATE AVAILABLE %s:\n%s", name, row, want, get)
		}
	}
	tour.next("GB=")
	tour.next("PASSWORD=")
	if got := tour.vars["PASSWORD"]; got != "change-me" {
		t.Errorf("PASSWORD=%q, want the Secret's change-me", got)
	}
	if out := tour.next("curl $GB/cgi-bin/hello"); !regexp.MustCompile(`^Welcome to the guestbook! \(guestbook-[a-z0-9]+-[a-z0-9]+\)\n$`).MatchString(out) {
		t.Errorf("hello: %q", out)
	}
	if out := tour.next(`curl -H "X-Password: $PASSWORD"`); out != "stored first\n" {
		t.Errorf("storing a note with the password: %q", out)
	}
	if out := tour.next("curl -d 'no password'"); out != "wrong password\n" {
		t.Errorf("storing a note without the password: %q", out)
	}
	ips := s.instanceIPs(t, "app=guestbook", 3)
	if ips[0] == ips[2] || !strings.Contains(tour.vars["GB"], ips[0]) {
		t.Fatalf("GB=%s; replicas at %q: want the first, and a third elsewhere", tour.vars["GB"], ips)
	}
	// Refused with 403, without the password or with another one.
	for _, password := range []string{"", "change-me-not"} {
		req, _ := http.NewRequest(http.MethodPost, tour.vars["GB"]+"/cgi-bin/notes?first", strings.NewReader("overwritten"))
		if password != "" {
			req.Header.Set("X-Password", password)
		}
		resp, err := nettest.Client(host).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("storing a note with password %q: %s, want 403 Forbidden", password, resp.Status)
		}
	}
	if out := tour.next(`curl "http://$(kubectl get inst -l app=guestbook -o jsonpath='{.items[2]`); out != "hello, two tiers\n" {
		t.Errorf("the note through another replica: %q", out)
	}
	// kv gives back what it holds: the body curl sent, without a newline.
	if out := tour.next(`curl "http://127.0.0.1:30090/cgi-bin/kv?first"`); out != "hello, two tiers" {
		t.Errorf("the note in kv: %q", out)
	}
	// kv's emptyDir, on the node; the guestbook's password on a tmpfs.
	kvUID := s.mustKubectl(t, "get", "instances", "-l", "app=kv", "-o", "jsonpath={.items[0].metadata.uid}")
	if b, err := os.ReadFile(filepath.Join(s.dataDir, "agent", "volumes", kvUID, "data", "first")); err != nil || string(b) != "hello, two tiers" {
		t.Errorf("kv's emptyDir on the node holds %q, %v", b, err)
	}
	gbUID := s.mustKubectl(t, "get", "instances", "-l", "app=guestbook", "-o", "jsonpath={.items[0].metadata.uid}")
	if info, err := os.ReadFile("/proc/self/mountinfo"); err != nil || !strings.Contains(string(info), filepath.Join(s.dataDir, "agent", "volumes", gbUID, "password")+" ") {
		t.Errorf("the guestbook's secret volume is not a mount of its own: %v", err)
	}

	// The old revision's Instances, ready, and the Workload's availability
	// from here on: it never drops below the 3 replicas.
	old := s.readyByName(t, "app=guestbook")
	if len(old) != 3 {
		t.Fatalf("guestbook Instances %v, want 3", old)
	}
	for name, ready := range old {
		if !ready {
			t.Fatalf("%s not ready before the rollout", name)
		}
	}
	oldRev := s.mustKubectl(t, "get", "workload", "guestbook", "-o", "jsonpath={.status.updateRevision}")
	available := func() {
		t.Helper()
		out, err := s.kubectl("get", "workload", "guestbook", "-o", "jsonpath={.status.availableReplicas}")
		if n, _ := strconv.Atoi(out); err == nil && n < 3 {
			t.Fatalf("availableReplicas %d during the rollout, want never below 3 (maxUnavailable 0)\n%s", n, s.twoTierState(t))
		}
	}

	if out := tour.next("kubectl create configmap guestbook-settings-v2"); !strings.Contains(out, "configmap/guestbook-settings-v2 created") {
		t.Errorf("create configmap: %s", out)
	}
	if out := tour.next("kubectl patch wl guestbook"); !strings.Contains(out, "workload.skiff.dev/guestbook patched") {
		t.Errorf("patch: %s", out)
	}
	var rev string
	waitFor(t, 60*time.Second, func() (bool, error) {
		available()
		r, err := s.kubectl("get", "workload", "guestbook", "-o", "jsonpath={.status.updateRevision}")
		rev = r
		return err == nil && r != "" && r != oldRev, nil
	})
	// The new Instance runs, and its readiness probe says why it is not
	// ready: kv is not on 30091.
	var newInst string
	waitFor(t, 90*time.Second, func() (bool, error) {
		available()
		out, err := s.kubectl("get", "instances", "-l", "app=guestbook,skiff.dev/revision="+rev, "-o",
			`jsonpath={range .items[*]}{.metadata.name}{"|"}{.status.containerStatuses[0].state.running.startedAt}{"\n"}{end}`)
		name, started, _ := strings.Cut(strings.TrimSpace(out), "|")
		newInst = name
		return err == nil && started != "", nil
	})
	const unhealthy = "Readiness probe failed: HTTP probe failed with statuscode: 503"
	waitFor(t, 60*time.Second, func() (bool, error) {
		available()
		events, err := s.kubectl("get", "events", "--field-selector", "involvedObject.name="+newInst+",reason=Unhealthy", "-o", `jsonpath={range .items[*]}{.message}{"\n"}{end}`)
		return err == nil && strings.Contains(events, unhealthy), nil
	})
	// What must not happen needs a window: for some probe periods (2 s)
	// and more than minReadySeconds (5 s), nothing old goes and nothing
	// new gets ready.
	hold(t, 8*time.Second, func() error {
		available()
		now := s.readyByName(t, "app=guestbook")
		for name := range old {
			if !now[name] {
				return fmt.Errorf("old Instance %s not ready (or gone) during the stalled rollout: %v\n%s", name, now, s.twoTierState(t))
			}
		}
		if len(now) != 4 || now[newInst] {
			return fmt.Errorf("guestbook Instances %v: want the 3 old ones and the new %s, not ready\n%s", now, newInst, s.twoTierState(t))
		}
		return nil
	})
	cols := tour.next("kubectl get inst -l app=guestbook -o custom-columns=")
	for name := range old {
		if row := rowFields(cols, 0, name); len(row) != 2 || row[1] != "True" {
			t.Errorf("custom-columns: old %s: %q, want True:\n%s", name, row, cols)
		}
	}
	if row := rowFields(cols, 0, newInst); len(row) != 2 || row[1] != "False" {
		t.Errorf("custom-columns: new %s: %q, want False:\n%s", newInst, row, cols)
	}
	if row := rowFields(tour.next("kubectl get wl guestbook"), 0, "guestbook"); len(row) < 5 || strings.Join(row[1:5], " ") != "3 3 1 3" {
		t.Errorf("kubectl get wl guestbook during the stall: %q, want DESIRED READY UP-TO-DATE AVAILABLE 3 3 1 3", row)
	}
	if out := tour.next("kubectl get events --field-selector reason=Unhealthy"); !strings.Contains(out, unhealthy+": the kv at http://") ||
		!strings.Contains(out, ":30091/cgi-bin/kv: wget: can't connect to remote host") || !strings.Contains(out, "Connection refused") {
		t.Errorf("Unhealthy events:\n%s", out)
	}
	// Through the old Instances the guestbook still answers as before.
	if out := tour.run(`curl "$GB/cgi-bin/notes?first"`); out != "hello, two tiers\n" {
		t.Errorf("an old Instance during the stalled rollout: %q", out)
	}

	if out := tour.next("kubectl patch configmap guestbook-settings-v2"); !strings.Contains(out, "configmap/guestbook-settings-v2 patched") {
		t.Errorf("patch configmap: %s", out)
	}
	// The rollout goes on, never with fewer than 3 available nor more
	// than 3 + maxSurge 1 Instances.
	start := time.Now()
	waitFor(t, 180*time.Second, func() (bool, error) {
		available()
		now := s.readyByName(t, "app=guestbook")
		if len(now) > 4 {
			t.Fatalf("%d live guestbook Instances, above 3 + maxSurge 1: %v", len(now), now)
		}
		reason, err := s.kubectl("get", "workload", "guestbook", "-o", `jsonpath={.status.conditions[?(@.type=="Progressing")].reason}`)
		return err == nil && reason == "NewRevisionAvailable", nil
	})
	t.Logf("the rollout completed %v after the ConfigMap's fix", time.Since(start).Round(time.Second))
	if out := tour.next("kubectl wait --for=jsonpath="); !strings.Contains(out, "condition met") {
		t.Errorf("kubectl wait for the rollout: %s", out)
	}
	waitFor(t, 30*time.Second, func() (bool, error) {
		out, err := s.kubectl("describe", "workload", "guestbook")
		return err == nil && strings.Contains(out, "RolloutComplete"), nil
	})
	if out := tour.next("kubectl describe wl guestbook"); !strings.Contains(out, "RolloutStarted") || !strings.Contains(out, "ScalingDown") || !strings.Contains(out, "RolloutComplete") {
		t.Errorf("describe after the rollout:\n%s", out)
	}
	tour.next("NEW=")
	if out := tour.next("curl $NEW/cgi-bin/hello"); !strings.HasPrefix(out, "Welcome back! (guestbook-"+rev+"-") {
		t.Errorf("hello from the new revision: %q", out)
	}
	if out := tour.next(`curl "$NEW/cgi-bin/notes?first"`); out != "hello, two tiers\n" {
		t.Errorf("the note through the new revision: %q", out)
	}
	tour.done()

	// Nothing restarted: the liveness probes passed all along.
	restarts := s.mustKubectl(t, "get", "instances", "-l", "app in (guestbook,kv)", "-o", `jsonpath={range .items[*]}{.status.containerStatuses[0].restartCount}{" "}{end}`)
	if strings.Trim(restarts, "0 ") != "" {
		t.Errorf("restart counts %q, want none", restarts)
	}

	s.mustKubectl(t, "delete", "-f", "../../config/samples/two-tier.yaml", "--timeout=120s")
	s.mustKubectl(t, "delete", "configmap", "guestbook-settings-v2")
	waitFor(t, 120*time.Second, func() (bool, error) {
		out, err := s.kubectl("get", "instances", "-l", "app in (guestbook,kv)", "-o", "name")
		return err == nil && strings.TrimSpace(out) == "", nil
	})
}

// twoTierState tells the sample's Instances (phase, readiness, restarts)
// and Events, for a failure's message.
func (s *server) twoTierState(t *testing.T) string {
	t.Helper()
	insts, _ := s.kubectl("get", "instances", "-o",
		`jsonpath={range .items[*]}{.metadata.name} {.status.phase} ready={.status.conditions[?(@.type=="Ready")].status} since={.status.conditions[?(@.type=="Ready")].lastTransitionTime} restarts={.status.containerStatuses[0].restartCount}{"\n"}{end}`)
	events, _ := s.kubectl("get", "events", "-o", `jsonpath={range .items[*]}{.lastTimestamp} {.involvedObject.name} {.reason}: {.message}{"\n"}{end}`)
	return "instances:\n" + insts + "events:\n" + events
}

// readyByName maps each live (not terminating) Instance of the selector to
// whether its Ready condition is True.
func (s *server) readyByName(t *testing.T, selector string) map[string]bool {
	t.Helper()
	out, err := s.kubectl("get", "instances", "-l", selector, "-o",
		`jsonpath={range .items[*]}{.metadata.name}{"|"}{.metadata.deletionTimestamp}{"|"}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}`)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Split(line, "|"); len(f) == 3 && f[1] == "" {
			m[f[0]] = f[2] == "True"
		}
	}
	return m
}

// hold polls cond for d and fails t the first time it returns an error:
// what must not happen, watched for a while.
func hold(t *testing.T, d time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if err := cond(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(pollInterval)
	}
}

// readmeTour runs the shell lines of a README section in order, as a user
// on the node would: kubectl against the server, curl from the node's
// network namespace (the test's node host), skiff as the binary under
// test. A line setting a variable (NAME=...) is run once and its value
// kept for the lines after it.
type readmeTour struct {
	t     *testing.T
	lines []string
	pos   int
	vars  map[string]string
	order []string
	env   []string
}

func newReadmeTour(t *testing.T, s *server, host, heading string) *readmeTour {
	t.Helper()
	tr := &readmeTour{t: t, vars: map[string]string{}, lines: readmeLines(t, heading)}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("the README's lines use curl, which is not installed")
	}
	// The README's machine is the node: curl runs in its namespace. The
	// repository's root is the working directory, as in the README.
	bin := t.TempDir()
	curl, _ := exec.LookPath("curl")
	scripts := map[string]string{
		"curl":  "#!/bin/sh\nexec nsenter --net=" + host + " " + curl + " -sS --max-time 20 \"$@\"\n",
		"skiff": "#!/bin/sh\nexec " + skiffBin + " \"$@\"\n",
	}
	for name, script := range scripts {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tr.env = append(s.kubectlEnv(s.kubeconfig), "PATH="+bin+":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	return tr
}

// readmeLines are the shell lines of a README section (its ```sh
// blocks, without comments and blank lines).
func readmeLines(t *testing.T, heading string) []string {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), heading)
	if !ok {
		t.Fatalf("README.md has no %q", strings.TrimSpace(heading))
	}
	section, _, _ = strings.Cut(section, "\n### ")
	section, _, _ = strings.Cut(section, "\n## ")
	var lines []string
	inBlock := false
	for _, line := range strings.Split(section, "\n") {
		switch {
		case strings.HasPrefix(line, "```"):
			inBlock = !inBlock && line == "```sh"
		case inBlock && strings.TrimSpace(line) != "" && !strings.HasPrefix(strings.TrimSpace(line), "#"):
			if strings.HasSuffix(line, "\\") {
				t.Fatalf("README.md: a continued line is not supported here: %q", line)
			}
			lines = append(lines, line)
		}
	}
	if len(lines) == 0 {
		t.Fatalf("README.md %q has no sh lines", strings.TrimSpace(heading))
	}
	return lines
}

var assignment = regexp.MustCompile(`^([A-Z_][A-Z0-9_]*)=`)

// run runs one line with the variables set so far and returns its
// standard output; it fails t when the line exits non-zero.
func (tr *readmeTour) run(line string) string {
	tr.t.Helper()
	var script strings.Builder
	for _, name := range tr.order {
		script.WriteString(name + "='" + strings.ReplaceAll(tr.vars[name], "'", `'\''`) + "'\n")
	}
	script.WriteString(line + "\n")
	m := assignment.FindStringSubmatch(line)
	if m != nil {
		script.WriteString(`printf %s "$` + m[1] + `"` + "\n")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-ec", script.String())
	cmd.Dir = "../.."
	cmd.Env = tr.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	tr.t.Logf("$ %s  (%v)\n%s%s", line, time.Since(start).Round(time.Millisecond), stdout.String(), stderr.String())
	if err != nil {
		tr.t.Fatalf("README line %q: %v\nstdout: %s\nstderr: %s", line, err, stdout.String(), stderr.String())
	}
	if m != nil {
		if _, ok := tr.vars[m[1]]; !ok {
			tr.order = append(tr.order, m[1])
		}
		tr.vars[m[1]] = stdout.String()
	}
	return stdout.String()
}

// next runs the README's next line, which must start with prefix.
func (tr *readmeTour) next(prefix string) string {
	tr.t.Helper()
	if tr.pos >= len(tr.lines) {
		tr.t.Fatalf("README.md: no line left for %q", prefix)
	}
	line := tr.lines[tr.pos]
	if !strings.HasPrefix(line, prefix) {
		tr.t.Fatalf("README.md: the next line is %q, want one starting %q", line, prefix)
	}
	tr.pos++
	return tr.run(line)
}

// done fails t unless every line of the section was run.
func (tr *readmeTour) done() {
	tr.t.Helper()
	if tr.pos != len(tr.lines) {
		tr.t.Errorf("README.md: lines not run by the test: %q", tr.lines[tr.pos:])
	}
}
