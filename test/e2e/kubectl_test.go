package e2e

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// workloadYAML is a minimal Workload manifest. extraSpec is spliced into
// spec verbatim (indented by two spaces), e.g. "replicas: 3".
func workloadYAML(name, namespace, app string, extraSpec ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: skiff.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: %s\n", name)
	if namespace != "" {
		fmt.Fprintf(&b, "  namespace: %s\n", namespace)
	}
	b.WriteString("spec:\n")
	for _, s := range extraSpec {
		fmt.Fprintf(&b, "  %s\n", s)
	}
	fmt.Fprintf(&b, `  template:
    metadata:
      labels:
        app: %q
    spec:
      containers:
      - name: c
        image: busybox:1.36
        command: ["sleep", "3600"]
`, app)
	return b.String()
}

// instanceYAML is a minimal Instance manifest labelled app=app.
func instanceYAML(name, namespace, app string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: skiff.dev/v1alpha1\nkind: Instance\nmetadata:\n  name: %s\n", name)
	if namespace != "" {
		fmt.Fprintf(&b, "  namespace: %s\n", namespace)
	}
	fmt.Fprintf(&b, `  labels:
    app: %q
spec:
  containers:
  - name: c
    image: busybox:1.36
`, app)
	return b.String()
}

func nodeYAML(name string) string {
	return fmt.Sprintf("apiVersion: skiff.dev/v1alpha1\nkind: Node\nmetadata:\n  name: %s\n", name)
}

// headerFields returns the whitespace-separated fields of the first line.
func headerFields(out string) []string {
	line, _, _ := strings.Cut(out, "\n")
	return strings.Fields(line)
}

// rowFields returns the fields of the first table row whose column col is
// value, or nil.
func rowFields(out string, col int, value string) []string {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > col && f[col] == value {
			return f
		}
	}
	return nil
}

// names turns `-o name` output into sorted names without the kind prefix.
func names(out string) []string {
	var ns []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if i := strings.LastIndex(line, "/"); i >= 0 {
			line = line[i+1:]
		}
		ns = append(ns, line)
	}
	sort.Strings(ns)
	return ns
}

func mustContain(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s: missing %q in:\n%s", what, w, got)
		}
	}
}

// mustFail asserts that r is a non-zero kubectl exit whose output contains wants.
func mustFail(t *testing.T, what string, r kubectlResult, wants ...string) {
	t.Helper()
	if r.ExitCode <= 0 {
		t.Errorf("%s: exit code %d, want non-zero (err %v)\nstdout: %s\nstderr: %s", what, r.ExitCode, r.Err, r.Stdout, r.Stderr)
	}
	mustContain(t, what, r.Combined(), wants...)
}

// jsonpath returns `kubectl get ARGS -o jsonpath=EXPR`.
func (s *server) jsonpath(t *testing.T, expr string, args ...string) string {
	t.Helper()
	return s.mustKubectl(t, append(append([]string{"get"}, args...), "-o", "jsonpath="+expr)...)
}

// getJSON decodes `kubectl get ARGS -o json` into a generic map.
func (s *server) getJSON(t *testing.T, args ...string) map[string]any {
	t.Helper()
	out := s.mustKubectl(t, append(append([]string{"get"}, args...), "-o", "json")...)
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("decode %s: %v", out, err)
	}
	return m
}

// absent asserts that `kubectl get KIND NAME` fails with NotFound and that
// the name is not listed.
func (s *server) absent(t *testing.T, kind, name string, nsArgs ...string) {
	t.Helper()
	r := s.runKubectl(append([]string{"get", kind, name}, nsArgs...)...)
	mustFail(t, "get "+kind+"/"+name, r, "NotFound")
	list := s.mustKubectl(t, append([]string{"get", kind, "-o", "name"}, nsArgs...)...)
	if slices.Contains(names(list), name) {
		t.Errorf("%s %q is listed but must not exist:\n%s", kind, name, list)
	}
}

func TestKubectl(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	s := startServer(t, t.TempDir(), "127.0.0.1:0")

	t.Run("api-resources", func(t *testing.T) {
		out := s.mustKubectl(t, "api-resources", "--no-headers")
		want := map[string][]string{
			"workloads":  {"workloads", "wl", "skiff.dev/v1alpha1", "true", "Workload"},
			"instances":  {"instances", "inst", "skiff.dev/v1alpha1", "true", "Instance"},
			"nodes":      {"nodes", "no", "skiff.dev/v1alpha1", "false", "Node"},
			"namespaces": {"namespaces", "ns", "v1", "false", "Namespace"},
			"events":     {"events", "ev", "v1", "true", "Event"},
			"leases":     {"leases", "coordination.k8s.io/v1", "true", "Lease"},
		}
		for name, fields := range want {
			got := rowFields(out, 0, name)
			if !slices.Equal(got, fields) {
				t.Errorf("api-resources row %s = %q, want %q\n%s", name, got, fields, out)
			}
		}
	})

	t.Run("apply multi-document", func(t *testing.T) {
		manifest := strings.Join([]string{
			"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: e2e-multi\n",
			workloadYAML("multi-wl", "e2e-multi", "multi", "replicas: 2"),
			instanceYAML("multi-inst", "e2e-multi", "multi"),
			nodeYAML("multi-node"),
		}, "---\n")
		f := writeFile(t, "multi.yaml", manifest)
		out := s.mustKubectl(t, "apply", "-f", f)
		mustContain(t, "first apply", out,
			"namespace/e2e-multi created",
			"workload.skiff.dev/multi-wl created",
			"instance.skiff.dev/multi-inst created",
			"node.skiff.dev/multi-node created")

		if got := s.jsonpath(t, "{.status.phase}", "namespace", "e2e-multi"); got != "Active" {
			t.Errorf("namespace phase = %q, want Active", got)
		}
		if got := s.jsonpath(t, "{.spec.replicas}", "-n", "e2e-multi", "wl", "multi-wl"); got != "2" {
			t.Errorf("multi-wl replicas = %q, want 2", got)
		}
		if got := s.jsonpath(t, "{.metadata.labels.app}", "-n", "e2e-multi", "inst", "multi-inst"); got != "multi" {
			t.Errorf("multi-inst app label = %q, want multi", got)
		}
		s.mustKubectl(t, "get", "node", "multi-node")

		rvs := func() string {
			return s.jsonpath(t, "{.metadata.resourceVersion}", "-n", "e2e-multi", "wl/multi-wl", "inst/multi-inst") +
				" " + s.jsonpath(t, "{.metadata.resourceVersion}", "ns/e2e-multi", "node/multi-node")
		}
		before := rvs()
		out = s.mustKubectl(t, "apply", "-f", f)
		if after := rvs(); after != before {
			t.Errorf("re-apply changed stored objects: resourceVersions %s -> %s", before, after)
		}
		mustContain(t, "re-apply", out, "namespace/e2e-multi unchanged", "node.skiff.dev/multi-node unchanged")
		mustContain(t, "re-apply", out,
			"workload.skiff.dev/multi-wl unchanged",
			"instance.skiff.dev/multi-inst unchanged")
	})

	t.Run("server-side apply", func(t *testing.T) {
		f := writeFile(t, "ssa.yaml", workloadYAML("ssa-wl", "", "ssa", "replicas: 2"))
		out := s.mustKubectl(t, "apply", "--server-side", "-f", f)
		mustContain(t, "server-side apply", out, "workload.skiff.dev/ssa-wl serverside-applied")

		yamlOut := s.mustKubectl(t, "get", "wl", "ssa-wl", "-o", "yaml", "--show-managed-fields")
		mustContain(t, "managed fields", yamlOut, "managedFields:", "manager: kubectl", "operation: Apply", "f:replicas: {}")
		managers := func() map[string]string {
			obj := s.getJSON(t, "wl", "ssa-wl", "--show-managed-fields")
			mf, _ := obj["metadata"].(map[string]any)["managedFields"].([]any)
			m := map[string]string{}
			for _, e := range mf {
				e := e.(map[string]any)
				m[fmt.Sprint(e["manager"])] = fmt.Sprint(e["operation"])
			}
			return m
		}
		if got := managers(); got["kubectl"] != "Apply" {
			t.Errorf("managedFields = %v, want manager kubectl with operation Apply", got)
		}

		f5 := writeFile(t, "ssa5.yaml", workloadYAML("ssa-wl", "", "ssa", "replicas: 5"))
		r := s.runKubectl("apply", "--server-side", "--field-manager=other", "-f", f5)
		mustFail(t, "conflicting server-side apply", r, "conflict", ".spec.replicas")
		if got := s.jsonpath(t, "{.spec.replicas}", "wl", "ssa-wl"); got != "2" {
			t.Errorf("replicas after refused apply = %s, want 2", got)
		}

		out = s.mustKubectl(t, "apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", f5)
		mustContain(t, "forced server-side apply", out, "serverside-applied")
		if got := s.jsonpath(t, "{.spec.replicas}", "wl", "ssa-wl"); got != "5" {
			t.Errorf("replicas after forced apply = %s, want 5", got)
		}
		if got := managers(); got["other"] != "Apply" {
			t.Errorf("managedFields = %v, want manager other with operation Apply", got)
		}
	})

	t.Run("diff", func(t *testing.T) {
		f := writeFile(t, "diff.yaml", workloadYAML("diff-wl", "", "diff", "replicas: 2"))
		s.mustKubectl(t, "apply", "-f", f)

		r := s.runKubectl("diff", "-f", f)
		if r.ExitCode != 0 || strings.TrimSpace(r.Stdout) != "" {
			t.Errorf("diff of unchanged manifest: exit %d, want 0 with no output\nstdout: %s\nstderr: %s", r.ExitCode, r.Stdout, r.Stderr)
		}

		f7 := writeFile(t, "diff7.yaml", workloadYAML("diff-wl", "", "diff", "replicas: 7"))
		r = s.runKubectl("diff", "-f", f7)
		if r.ExitCode != 1 {
			t.Errorf("diff of changed manifest: exit %d, want 1\nstdout: %s\nstderr: %s", r.ExitCode, r.Stdout, r.Stderr)
		}
		if !regexp.MustCompile(`(?m)^-\s+replicas: 2$`).MatchString(r.Stdout) ||
			!regexp.MustCompile(`(?m)^\+\s+replicas: 7$`).MatchString(r.Stdout) {
			t.Errorf("diff does not show replicas 2 -> 7:\n%s", r.Stdout)
		}
		if got := s.jsonpath(t, "{.spec.replicas}", "wl", "diff-wl"); got != "2" {
			t.Errorf("replicas after diff = %s, want 2 (diff must not change the object)", got)
		}
	})

	t.Run("get wide and yaml", func(t *testing.T) {
		wl := workloadYAML("wide-wl", "", "wide", "replicas: 3") +
			"        ports:\n        - name: http\n          containerPort: 8080\n"
		s.mustKubectl(t, "apply", "-f", writeFile(t, "wide.yaml", wl))

		out := s.mustKubectl(t, "get", "wl", "wide-wl", "-o", "wide")
		wantHeader := []string{"NAME", "DESIRED", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "IMAGES", "SELECTOR"}
		if got := headerFields(out); !slices.Equal(got, wantHeader) {
			t.Errorf("workload wide header = %q, want %q", got, wantHeader)
		}
		row := rowFields(out, 0, "wide-wl")
		if len(row) != len(wantHeader) {
			t.Fatalf("workload wide row = %q\n%s", row, out)
		}
		if row[1] != "3" || row[2] != "0" || row[6] != "busybox:1.36" || row[7] != "app=wide" {
			t.Errorf("workload wide row = %q, want DESIRED 3 READY 0 IMAGES busybox:1.36 SELECTOR app=wide", row)
		}

		inst := `apiVersion: skiff.dev/v1alpha1
kind: Instance
metadata:
  name: wide-inst
spec:
  containers:
  - name: c
    image: busybox:1.36
    resources:
      requests: {cpu: 100m, memory: 32Mi}
      limits: {cpu: 100m, memory: 32Mi}
`
		s.mustKubectl(t, "apply", "-f", writeFile(t, "inst.yaml", inst))
		s.mustKubectl(t, "apply", "-f", writeFile(t, "inst2.yaml", instanceYAML("wide-inst-be", "", "wide")))
		out = s.mustKubectl(t, "get", "inst", "wide-inst", "wide-inst-be", "-o", "wide")
		wantHeader = []string{"NAME", "STATUS", "NODE", "RESTARTS", "AGE", "IP", "QOS"}
		if got := headerFields(out); !slices.Equal(got, wantHeader) {
			t.Errorf("instance wide header = %q, want %q", got, wantHeader)
		}
		for name, qos := range map[string]string{"wide-inst": "Guaranteed", "wide-inst-be": "BestEffort"} {
			row = rowFields(out, 0, name)
			if len(row) != len(wantHeader) || row[1] != "Pending" || row[2] != "<none>" || row[6] != qos {
				t.Errorf("instance wide row = %q, want STATUS Pending NODE <none> QOS %s\n%s", row, qos, out)
			}
		}

		s.mustKubectl(t, "apply", "-f", writeFile(t, "node.yaml", nodeYAML("wide-node")))
		out = s.mustKubectl(t, "get", "no", "wide-node", "-o", "wide")
		wantHeader = []string{"NAME", "PHASE", "CPU", "MEMORY", "AGE", "VERSION", "RUNTIME", "ADDRESS", "CIDR", "GOSSIP"}
		if got := headerFields(out); !slices.Equal(got, wantHeader) {
			t.Errorf("node wide header = %q, want %q", got, wantHeader)
		}
		if rowFields(out, 0, "wide-node") == nil {
			t.Errorf("node wide output has no wide-node row:\n%s", out)
		}

		y := s.mustKubectl(t, "get", "wl", "wide-wl", "-o", "yaml")
		mustContain(t, "workload yaml defaults", y,
			"maxSurge: 25%", "maxUnavailable: 25%", "type: RollingUpdate",
			"protocol: TCP", "restartPolicy: Always", "matchLabels:\n      app: wide")
		y = s.mustKubectl(t, "get", "inst", "wide-inst", "-o", "yaml")
		mustContain(t, "instance yaml defaults", y, "restartPolicy: Always", "phase: Pending", "qosClass: Guaranteed")
	})

	t.Run("watch", func(t *testing.T) {
		s.mustKubectl(t, "apply", "-f", writeFile(t, "watch.yaml", workloadYAML("watch-wl", "", "watch", "replicas: 1")))

		cmd := exec.Command(kubectlPath, "get", "wl", "watch-wl", "-w", "--output-watch-events")
		cmd.Env = s.kubectlEnv(s.kubeconfig)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 100)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			_, _ = io.Copy(io.Discard, stdout)
		}()
		stopWatch := func() {
			if cmd.ProcessState == nil {
				_ = cmd.Process.Kill()
				for range lines {
				}
				_ = cmd.Wait()
			}
		}
		defer stopWatch()

		var seen []string
		// next returns the next line matching ok, failing after 30s.
		next := func(what string, ok func(f []string) bool) {
			t.Helper()
			timeout := time.After(30 * time.Second)
			for {
				select {
				case line, open := <-lines:
					if !open {
						t.Fatalf("watch ended before %s; output:\n%s\nstderr: %s", what, strings.Join(seen, "\n"), stderr.String())
					}
					seen = append(seen, line)
					if ok(strings.Fields(line)) {
						return
					}
				case <-timeout:
					t.Fatalf("watch showed no %s within 30s; output:\n%s\nstderr: %s", what, strings.Join(seen, "\n"), stderr.String())
				}
			}
		}
		// EVENT NAME DESIRED READY UP-TO-DATE AVAILABLE AGE
		next("ADDED line", func(f []string) bool { return len(f) >= 3 && f[0] == "ADDED" && f[1] == "watch-wl" })
		out := s.mustKubectl(t, "scale", "wl", "watch-wl", "--replicas=4")
		mustContain(t, "scale", out, "workload.skiff.dev/watch-wl scaled")
		next("MODIFIED line with DESIRED 4", func(f []string) bool {
			return len(f) >= 3 && f[0] == "MODIFIED" && f[1] == "watch-wl" && f[2] == "4"
		})
		if seen[0] != "" && !strings.HasPrefix(seen[0], "EVENT") {
			t.Errorf("watch output has no header line: %q", seen[0])
		}
		stopWatch()
	})

	t.Run("scale", func(t *testing.T) {
		s.mustKubectl(t, "apply", "-f", writeFile(t, "scale.yaml", workloadYAML("scale-wl", "", "scale", "replicas: 1")))
		out := s.mustKubectl(t, "scale", "wl", "scale-wl", "--replicas=5")
		mustContain(t, "scale", out, "workload.skiff.dev/scale-wl scaled")
		if got := s.jsonpath(t, "{.spec.replicas}", "wl", "scale-wl"); got != "5" {
			t.Errorf("spec.replicas = %s, want 5", got)
		}
		raw := s.mustKubectl(t, "get", "--raw", "/apis/skiff.dev/v1alpha1/namespaces/default/workloads/scale-wl/scale")
		var scale struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name, Namespace string
			} `json:"metadata"`
			Spec struct {
				Replicas int `json:"replicas"`
			} `json:"spec"`
			Status struct {
				Selector string `json:"selector"`
			} `json:"status"`
		}
		if err := json.Unmarshal([]byte(raw), &scale); err != nil {
			t.Fatalf("decode scale %s: %v", raw, err)
		}
		if scale.APIVersion != "autoscaling/v1" || scale.Kind != "Scale" || scale.Metadata.Name != "scale-wl" ||
			scale.Metadata.Namespace != "default" || scale.Spec.Replicas != 5 || scale.Status.Selector != "app=scale" {
			t.Errorf("scale subresource = %s, want autoscaling/v1 Scale scale-wl replicas 5 selector app=scale", raw)
		}

		// Scaling with a precondition that does not hold is refused.
		r := s.runKubectl("scale", "wl", "scale-wl", "--current-replicas=2", "--replicas=3")
		mustFail(t, "scale with wrong --current-replicas", r)
		if got := s.jsonpath(t, "{.spec.replicas}", "wl", "scale-wl"); got != "5" {
			t.Errorf("spec.replicas after refused scale = %s, want 5", got)
		}
	})

	t.Run("patch", func(t *testing.T) {
		s.mustKubectl(t, "apply", "-f", writeFile(t, "patch.yaml", workloadYAML("patch-wl", "", "patch", "replicas: 1")))
		out := s.mustKubectl(t, "patch", "wl", "patch-wl", "--type=merge", "-p", `{"spec":{"replicas":6}}`)
		mustContain(t, "merge patch", out, "workload.skiff.dev/patch-wl patched")
		out = s.mustKubectl(t, "patch", "wl", "patch-wl", "--type=json", "-p",
			`[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"busybox:1.37"}]`)
		mustContain(t, "json patch", out, "workload.skiff.dev/patch-wl patched")
		if got := s.jsonpath(t, "{.spec.replicas} {.spec.template.spec.containers[0].image}", "wl", "patch-wl"); got != "6 busybox:1.37" {
			t.Errorf("after patches: %q, want %q", got, "6 busybox:1.37")
		}
		// The generation, not the resourceVersion: the controller's status
		// writes go on meanwhile, a refused patch changes nothing of the spec.
		gen := s.jsonpath(t, "{.metadata.generation}", "wl", "patch-wl")

		r := s.runKubectl("patch", "wl", "patch-wl", "--type=json", "-p", `[{"op":"replace","path":"/spec/replicas","value":-3}]`)
		mustFail(t, "invalid json patch", r, "spec.replicas", "Invalid value", "-3")
		r = s.runKubectl("patch", "wl", "patch-wl", "--type=json", "-p",
			`[{"op":"replace","path":"/spec/template/spec/containers/0/ports","value":[{"containerPort":70000}]}]`)
		mustFail(t, "invalid port json patch", r, "spec.template.spec.containers[0].ports[0].containerPort")
		if got := s.jsonpath(t, "{.metadata.generation} {.spec.replicas} {.spec.template.spec.containers[0].ports}", "wl", "patch-wl"); got != gen+" 6 " {
			t.Errorf("after refused patches: %q, want %q", got, gen+" 6 ")
		}
	})

	t.Run("describe with events", func(t *testing.T) {
		s.mustKubectl(t, "apply", "-f", writeFile(t, "describe.yaml", workloadYAML("describe-wl", "", "describe", "replicas: 2")))
		uid := s.jsonpath(t, "{.metadata.uid}", "wl", "describe-wl")
		now := time.Now().UTC().Format(time.RFC3339)
		ev := fmt.Sprintf(`apiVersion: v1
kind: Event
metadata:
  name: describe-wl.e2e
  namespace: default
involvedObject:
  apiVersion: skiff.dev/v1alpha1
  kind: Workload
  name: describe-wl
  namespace: default
  uid: %s
reason: E2EReason
message: e2e event message for describe
type: Normal
source:
  component: e2e-test
count: 1
firstTimestamp: %q
lastTimestamp: %q
`, uid, now, now)
		out := s.mustKubectl(t, "create", "-f", writeFile(t, "event.yaml", ev))
		mustContain(t, "create event", out, "event/describe-wl.e2e created")

		out = s.mustKubectl(t, "describe", "wl", "describe-wl")
		for _, re := range []string{`(?m)^Name:\s+describe-wl$`, `(?m)^Namespace:\s+default$`, `(?m)^\s*Replicas:\s+2$`, `(?m)^Events:`} {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("describe output does not match %s:\n%s", re, out)
			}
		}
		_, events, _ := strings.Cut(out, "\nEvents:")
		mustContain(t, "describe Events section", events, "E2EReason", "e2e event message for describe", "e2e-test")
	})

	t.Run("explain", func(t *testing.T) {
		out := s.mustKubectl(t, "explain", "workload.spec.template")
		mustContain(t, "explain workload.spec.template", out, "KIND:       Workload", "FIELDS:")
		for _, re := range []string{`(?m)^\s+metadata\s+<`, `(?m)^\s+spec\s+<`} {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("explain workload.spec.template does not match %s:\n%s", re, out)
			}
		}
		out = s.mustKubectl(t, "explain", "instance.spec.containers.resources")
		mustContain(t, "explain instance.spec.containers.resources", out, "KIND:       Instance", "FIELDS:")
		for _, re := range []string{`(?m)^\s+limits\s+<`, `(?m)^\s+requests\s+<`} {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("explain instance.spec.containers.resources does not match %s:\n%s", re, out)
			}
		}
		r := s.runKubectl("explain", "workload.spec.nosuchfield")
		mustFail(t, "explain unknown field", r, "nosuchfield")
	})

	t.Run("delete", func(t *testing.T) {
		s.mustKubectl(t, "apply", "-f", writeFile(t, "delete.yaml", workloadYAML("delete-wl", "", "delete")))
		s.mustKubectl(t, "get", "wl", "delete-wl")
		out := s.mustKubectl(t, "delete", "wl", "delete-wl")
		mustContain(t, "delete", out, `workload.skiff.dev "delete-wl" deleted`)
		s.absent(t, "wl", "delete-wl")
		r := s.runKubectl("delete", "wl", "delete-wl")
		mustFail(t, "second delete", r, "NotFound")
	})

	t.Run("selectors and binding", func(t *testing.T) {
		manifest := strings.Join([]string{
			nodeYAML("sel-node"),
			instanceYAML("sel-a1", "", "sel-x"),
			instanceYAML("sel-a2", "", "sel-x"),
			instanceYAML("sel-b1", "", "sel-y"),
		}, "---\n")
		s.mustKubectl(t, "apply", "-f", writeFile(t, "sel.yaml", manifest))

		binding := writeFile(t, "binding.json",
			`{"apiVersion":"skiff.dev/v1alpha1","kind":"Binding","metadata":{"name":"sel-a1"},"nodeName":"sel-node"}`)
		bindPath := "/apis/skiff.dev/v1alpha1/namespaces/default/instances/sel-a1/binding"
		s.mustKubectl(t, "create", "--raw", bindPath, "-f", binding)
		if got := s.jsonpath(t, "{.spec.nodeName}", "inst", "sel-a1"); got != "sel-node" {
			t.Errorf("sel-a1 spec.nodeName = %q, want sel-node", got)
		}

		check := func(want []string, args ...string) {
			t.Helper()
			got := names(s.mustKubectl(t, append([]string{"get", "inst", "-o", "name"}, args...)...))
			if !slices.Equal(got, want) {
				t.Errorf("get inst %s = %q, want %q", strings.Join(args, " "), got, want)
			}
		}
		check([]string{"sel-a1", "sel-a2"}, "-l", "app=sel-x")
		check([]string{"sel-b1"}, "-l", "app=sel-y")
		check([]string{"sel-a1", "sel-a2", "sel-b1"}, "-l", "app in (sel-x,sel-y)")
		check([]string{"sel-a1"}, "--field-selector", "spec.nodeName=sel-node")
		check([]string{"sel-a2", "sel-b1"}, "-l", "app in (sel-x,sel-y)", "--field-selector", "spec.nodeName!=sel-node")
		check([]string{"sel-a1", "sel-a2"}, "-l", "app=sel-x", "--field-selector", "status.phase=Pending")
		check(nil, "-l", "app=sel-x", "--field-selector", "status.phase=Running")
		// Every instance the phase selector returns is Pending.
		phases := s.jsonpath(t, "{range .items[*]}{.status.phase}{\"\\n\"}{end}", "inst", "--field-selector", "status.phase=Pending")
		for _, p := range strings.Fields(phases) {
			if p != "Pending" {
				t.Errorf("status.phase=Pending selector returned an instance in phase %q", p)
			}
		}

		r := s.runKubectl("create", "--raw", bindPath, "-f", binding)
		mustFail(t, "second bind", r, "Conflict", "already bound")
		other := writeFile(t, "binding2.json",
			`{"apiVersion":"skiff.dev/v1alpha1","kind":"Binding","metadata":{"name":"sel-a1"},"nodeName":"multi-node"}`)
		r = s.runKubectl("create", "--raw", bindPath, "-f", other)
		mustFail(t, "rebind to another node", r, "Conflict")
		if got := s.jsonpath(t, "{.spec.nodeName}", "inst", "sel-a1"); got != "sel-node" {
			t.Errorf("sel-a1 spec.nodeName after refused binds = %q, want sel-node", got)
		}
	})

	t.Run("namespace deletion", func(t *testing.T) {
		out := s.mustKubectl(t, "create", "namespace", "team-a")
		mustContain(t, "create namespace", out, "namespace/team-a created")
		s.mustKubectl(t, "apply", "-f", writeFile(t, "inst.yaml", instanceYAML("team-inst", "team-a", "team")))

		r := s.runKubectl("delete", "namespace", "team-a")
		mustFail(t, "delete non-empty namespace", r, "is not empty")
		if got := s.jsonpath(t, "{.status.phase}", "ns", "team-a"); got != "Active" {
			t.Errorf("team-a phase after refused delete = %q, want Active", got)
		}
		if got := names(s.mustKubectl(t, "-n", "team-a", "get", "inst", "-o", "name")); !slices.Equal(got, []string{"team-inst"}) {
			t.Errorf("instances in team-a after refused delete = %q, want [team-inst]", got)
		}

		s.mustKubectl(t, "-n", "team-a", "delete", "inst", "team-inst")
		out = s.mustKubectl(t, "delete", "namespace", "team-a")
		mustContain(t, "delete empty namespace", out, `namespace "team-a" deleted`)
		waitFor(t, 30*time.Second, func() (bool, error) {
			r := s.runKubectl("get", "namespace", "team-a")
			return r.ExitCode != 0 && strings.Contains(r.Stderr, "NotFound"), nil
		})

		r = s.runKubectl("delete", "namespace", "default")
		mustFail(t, "delete namespace default", r, "Forbidden")
		if got := s.jsonpath(t, "{.status.phase}", "ns", "default"); got != "Active" {
			t.Errorf("default phase after refused delete = %q, want Active", got)
		}
	})

	t.Run("invalid manifests", func(t *testing.T) {
		cases := []struct {
			name, manifest string
			wants          []string
		}{
			{"bad-replicas", workloadYAML("bad-replicas", "", "bad", "replicas: -1"),
				[]string{"spec.replicas", "Invalid value: -1"}},
			{"bad-field", workloadYAML("bad-field", "", "bad", "replicaz: 3"),
				[]string{`unknown field "spec.replicaz"`}},
			{"Web_1", workloadYAML("Web_1", "", "bad"),
				[]string{"metadata.name", `Invalid value: "Web_1"`}},
		}
		for _, c := range cases {
			f := writeFile(t, "bad.yaml", c.manifest)
			mustFail(t, "apply "+c.name, s.runKubectl("apply", "-f", f), c.wants...)
			mustFail(t, "create "+c.name, s.runKubectl("create", "-f", f), c.wants...)
			list := names(s.mustKubectl(t, "get", "wl", "-o", "name"))
			if slices.Contains(list, c.name) {
				t.Errorf("invalid workload %s was stored: %q", c.name, list)
			}
		}
		s.absent(t, "wl", "bad-replicas")
		s.absent(t, "wl", "bad-field")

		f := writeFile(t, "dry.yaml", workloadYAML("dry-wl", "", "dry"))
		out := s.mustKubectl(t, "apply", "--dry-run=server", "-f", f)
		mustContain(t, "server dry run", out, "workload.skiff.dev/dry-wl created (server dry run)")
		s.absent(t, "wl", "dry-wl")
	})

	t.Run("authentication", func(t *testing.T) {
		client := s.anonymousClient(t)
		resp, err := client.Get(s.url + "/api/v1/namespaces")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("anonymous GET /api/v1/namespaces = %d %s, want 401", resp.StatusCode, body)
		}
		resp, err = client.Get(s.url + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "ok" {
			t.Errorf("anonymous GET /readyz = %d %q, want 200 ok", resp.StatusCode, body)
		}

		kc := strangerKubeconfig(t, s)
		r := s.run(kc, "get", "namespaces")
		mustFail(t, "kubectl with an unknown client key", r, "Unauthorized")
		r = s.run(kc, "get", "wl")
		mustFail(t, "kubectl get wl with an unknown client key", r, "Unauthorized")
	})

	t.Run("version", func(t *testing.T) {
		r := s.runKubectl("version")
		if !regexp.MustCompile(`(?m)^Server Version: v\d+\.\d+\.\d+`).MatchString(r.Stdout) {
			t.Errorf("kubectl version has no Server Version line:\nstdout: %s\nstderr: %s", r.Stdout, r.Stderr)
		}
		if r.ExitCode != 0 {
			t.Errorf("kubectl version: exit %d\nstdout: %s\nstderr: %s", r.ExitCode, r.Stdout, r.Stderr)
		}
		raw := s.mustKubectl(t, "get", "--raw", "/version")
		var v struct{ GitVersion, Major, Minor string }
		if err := json.Unmarshal([]byte(raw), &v); err != nil || v.GitVersion == "" {
			t.Errorf("/version = %s (%v), want a gitVersion", raw, err)
		}
	})
}

// strangerKubeconfig writes a kubeconfig for s whose user presents a fresh
// self-signed Ed25519 client certificate that the server never trusted.
func strangerKubeconfig(t *testing.T, s *server) string {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "skiff:admin", Organization: []string{"skiff"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := x509.ParseCertificate(der); err != nil || c.SignatureAlgorithm != x509.PureEd25519 {
		t.Fatalf("generated certificate: %v, algorithm %v", err, c.SignatureAlgorithm)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: skiff
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: stranger
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: stranger
  context:
    cluster: skiff
    user: stranger
    namespace: default
current-context: stranger
`, s.url, filepath.Join(s.dataDir, "serving.crt"),
		base64.StdEncoding.EncodeToString(certPEM), base64.StdEncoding.EncodeToString(keyPEM))
	return writeFile(t, "stranger.kubeconfig", kc)
}
