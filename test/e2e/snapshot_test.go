package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// snapshotCmd runs `skiff etcd-snapshot ARGS` as the admin of s.
func (s *server) snapshotCmd(t *testing.T, args ...string) string {
	t.Helper()
	out, err := skiffCmd(append(append([]string{"etcd-snapshot"}, args...), "--kubeconfig", s.kubeconfig)...)
	if err != nil {
		t.Fatalf("skiff etcd-snapshot %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// snapshotField is the value of a `key: value` line of out.
func snapshotField(t *testing.T, out, key string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + `: (.*)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no %q line in:\n%s", key, out)
	}
	return strings.TrimSpace(m[1])
}

// snapshotSecret is a Secret's data[key], decoded.
func (s *server) snapshotSecret(t *testing.T, ns, name, key string) string {
	t.Helper()
	enc := s.jsonpath(t, "{.data."+key+"}", "secret", "-n", ns, name)
	dec, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		t.Fatalf("secret %s/%s %s: %q: %v", ns, name, key, enc, err)
	}
	return string(dec)
}

// restoreSnapshot runs `skiff server --cluster-reset --restore file` on dataDir.
func restoreSnapshot(dataDir, file string) (string, error) {
	cmd := exec.Command(skiffBin, "server", "--data-dir", dataDir, "--cluster-reset", "--restore", file)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestSnapshot(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	dataDir := t.TempDir()
	flags := []string{"--runtime", "sim", "--etcd-snapshot-schedule", "@every 2s", "--etcd-snapshot-retention", "2"}
	s := startServer(t, dataDir, "127.0.0.1:0", flags...)

	// Objects before: a Secret in two namespaces, a ConfigMap, a Workload.
	s.mustKubectl(t, "create", "namespace", "team-a")
	s.mustKubectl(t, "create", "secret", "generic", "db-pass", "--from-literal=password=s3cret")
	s.mustKubectl(t, "create", "secret", "generic", "api-key", "-n", "team-a", "--from-literal=key=k-123")
	s.mustKubectl(t, "create", "configmap", "settings", "--from-literal=mode=blue")
	s.mustKubectl(t, "apply", "-f", writeFile(t, "web.yaml", workloadYAML("web", "", "web", "replicas: 2")))
	webUID := s.jsonpath(t, "{.metadata.uid}", "wl", "web")

	start := time.Now()
	out := s.snapshotCmd(t, "save", "--name", "before")
	t.Logf("skiff etcd-snapshot save took %v:\n%s", time.Since(start), out)
	name, path := snapshotField(t, out, "name"), snapshotField(t, out, "path")
	if !strings.HasPrefix(name, "before-") || path != filepath.Join(dataDir, "snapshots", name) {
		t.Errorf("name %q, path %q: want before-<node>-<time> in %s/snapshots", name, path, dataDir)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("snapshot file: %v %v", fi, err)
	}
	if !strings.Contains(snapshotField(t, out, "size"), "bytes") || !strings.Contains(snapshotField(t, out, "objects"), "secrets 3") {
		// 3: the two made here and the first join token's record.
		t.Errorf("save's report:\n%s", out)
	}
	if !strings.Contains(out, "encryption") || !strings.Contains(out, "identities") {
		t.Errorf("save does not say what the snapshot holds:\n%s", out)
	}
	if list := s.snapshotCmd(t, "list"); !regexp.MustCompile(`(?m)^NAME\s+SIZE\s+CREATED$`).MatchString(list) || !strings.Contains(list, name) {
		t.Errorf("list does not show %s:\n%s", name, list)
	}

	// Changes after the snapshot, which the restore must undo. The key
	// rotation leaves no key that reads the snapshot's Secrets: they read
	// after the restore only if it put the snapshot's keys back.
	s.mustKubectl(t, "delete", "secret", "db-pass")
	s.mustKubectl(t, "create", "secret", "generic", "later", "--from-literal=x=y")
	s.mustKubectl(t, "delete", "configmap", "settings")
	s.mustKubectl(t, "scale", "wl", "web", "--replicas=5")
	s.mustKubectl(t, "apply", "-f", writeFile(t, "api.yaml", workloadYAML("api", "", "api")))
	if out, err := skiffCmd("secrets", "rotate-key", "--kubeconfig", s.kubeconfig); err != nil {
		t.Fatalf("rotate-key: %v\n%s", err, out)
	}

	// Scheduled snapshots every 2 s, the newest 2 kept; saved ones stay.
	scheduled := regexp.MustCompile(`(?m)^etcd-snapshot-\S+`)
	waitFor(t, 30*time.Second, func() (bool, error) {
		return len(scheduled.FindAllString(s.snapshotCmd(t, "list"), -1)) == 2, nil
	})
	time.Sleep(5 * time.Second) // at least two more taken, and pruned
	list := s.snapshotCmd(t, "list", "-o", "wide")
	if n := len(scheduled.FindAllString(list, -1)); n != 2 || !strings.Contains(list, name) {
		t.Errorf("with --etcd-snapshot-retention 2: %d scheduled, want 2, and %s kept:\n%s", n, name, list)
	}
	health := s.mustKubectl(t, "get", "--raw", "/health")
	if !strings.Contains(health, `"etcd_snapshots"`) || !strings.Contains(health, `"last":"etcd-snapshot-`) {
		t.Errorf("/health does not report the scheduled snapshots: %s", health)
	}

	// Not while the server runs.
	if out, err := restoreSnapshot(dataDir, path); err == nil || !strings.Contains(out, "in use") {
		t.Errorf("restore while the server runs: %v\n%s", err, out)
	}
	if err := s.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}

	// A damaged or missing file is refused, and nothing is touched.
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), good...)
	bad[len(bad)/2] ^= 0xff
	badPath := writeFile(t, "damaged", string(bad))
	if out, err := restoreSnapshot(dataDir, badPath); err == nil || !strings.Contains(out, "corrupt") {
		t.Errorf("restore of a damaged file: %v\n%s", err, out)
	}
	if out, err := restoreSnapshot(dataDir, writeFile(t, "cut", string(good[:len(good)-5000]))); err == nil || !strings.Contains(out, "corrupt") {
		t.Errorf("restore of a truncated file: %v\n%s", err, out)
	}
	if out, err := restoreSnapshot(dataDir, filepath.Join(dataDir, "nope")); err == nil || !strings.Contains(out, "no such file") {
		t.Errorf("restore of a missing file: %v\n%s", err, out)
	}
	if out, err := skiffCmd("server", "--data-dir", dataDir, "--restore", path); err == nil || !strings.Contains(out, "--cluster-reset") {
		t.Errorf("--restore without --cluster-reset: %v\n%s", err, out)
	}
	if m, _ := filepath.Glob(filepath.Join(dataDir, "etcd.*")); len(m) != 0 {
		t.Errorf("a refused restore left %v", m)
	}

	// The restore, by name in the snapshot directory.
	start = time.Now()
	out, err = restoreSnapshot(dataDir, name)
	if err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	t.Logf("restore took %v:\n%s", time.Since(start), out)
	if !strings.Contains(out, "restored "+name) || !strings.Contains(out, "without --cluster-reset") {
		t.Errorf("restore's report:\n%s", out)
	}

	s2 := startServer(t, dataDir, "127.0.0.1:0", flags[:2]...)
	// Everything from before is back, the Secrets readable.
	if got := s2.snapshotSecret(t, "default", "db-pass", "password"); got != "s3cret" {
		t.Errorf("secret db-pass after restore = %q", got)
	}
	if got := s2.snapshotSecret(t, "team-a", "api-key", "key"); got != "k-123" {
		t.Errorf("secret team-a/api-key after restore = %q", got)
	}
	if got := s2.jsonpath(t, "{.data.mode}", "configmap", "settings"); got != "blue" {
		t.Errorf("configmap settings after restore: mode = %q", got)
	}
	if got := s2.jsonpath(t, "{.metadata.uid} {.spec.replicas}", "wl", "web"); got != webUID+" 2" {
		t.Errorf("workload web after restore: %q, want %q", got, webUID+" 2")
	}
	// Everything after is gone.
	for _, obj := range [][]string{{"secret", "later"}, {"wl", "api"}} {
		if r := s2.runKubectl(append([]string{"get"}, obj...)...); r.ExitCode == 0 || !strings.Contains(r.Stderr, "NotFound") {
			t.Errorf("%s after restore: exit %d %s%s", strings.Join(obj, " "), r.ExitCode, r.Stdout, r.Stderr)
		}
	}
	// Its writes work, Secrets too, and resourceVersions moved past
	// everything before the restore.
	s2.mustKubectl(t, "create", "secret", "generic", "after", "--from-literal=a=b")
	if got := s2.snapshotSecret(t, "default", "after", "a"); got != "b" {
		t.Errorf("a secret written after the restore = %q", got)
	}
	if rv := s2.jsonpath(t, "{.metadata.resourceVersion}", "secret", "after"); len(rv) < 10 {
		t.Errorf("resourceVersion after the restore = %s, want past the bump", rv)
	}
	s2.mustKubectl(t, "scale", "wl", "web", "--replicas=3")

	// On a new machine (an empty data directory) the snapshot brings the
	// server's identities too: the same serving certificate (which the
	// agents' join tokens pin), the same admin key, the Secrets readable.
	fresh := t.TempDir()
	out, err = restoreSnapshot(fresh, path)
	if err != nil {
		t.Fatalf("restore into an empty data directory: %v\n%s", err, out)
	}
	if w := regexp.MustCompile(`(?m)^identities and trust written from the snapshot: (.*)$`).FindStringSubmatch(out); w == nil ||
		!strings.Contains(w[1], "serving.key") || !strings.Contains(w[1], "admin.key") || !strings.Contains(w[1], "join-token") || !strings.Contains(w[1], "gossip.keyring") {
		t.Errorf("restore into an empty data directory:\n%s", out)
	}
	s3 := startServer(t, fresh, "127.0.0.1:0")
	for _, f := range []string{"serving.crt", "admin.key", "apiserver-client.key", "join-token"} {
		a, _ := os.ReadFile(filepath.Join(dataDir, f))
		b, _ := os.ReadFile(filepath.Join(fresh, f))
		if len(a) == 0 || string(a) != string(b) {
			t.Errorf("%s on the new machine differs from the server's", f)
		}
	}
	if got := s3.snapshotSecret(t, "team-a", "api-key", "key"); got != "k-123" {
		t.Errorf("secret team-a/api-key on the new machine = %q", got)
	}
	if err := s3.stop(); err != nil {
		t.Errorf("stop: %v", err)
	}

	// delete removes a snapshot.
	out = s2.snapshotCmd(t, "delete", name)
	if !strings.Contains(out, "deleted "+name) {
		t.Errorf("delete: %s", out)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("%s after delete: %v", path, err)
	}
	if list := s2.snapshotCmd(t, "list"); strings.Contains(list, name) {
		t.Errorf("list after delete still shows %s:\n%s", name, list)
	}
	if out, err := skiffCmd("etcd-snapshot", "delete", name, "--kubeconfig", s2.kubeconfig); err == nil || !strings.Contains(out, "no such snapshot") {
		t.Errorf("delete again: %v\n%s", err, out)
	}
}

// TestSnapshotScale times save and restore with 10,000 objects.
func TestSnapshotScale(t *testing.T) {
	requireE2E(t)
	if testing.Short() {
		t.Skip("10,000 objects")
	}
	t.Parallel()
	const objects = 10000
	dataDir := t.TempDir()
	s := startServer(t, dataDir, "127.0.0.1:0", "--disable-agent", "--disable-controllers", "--etcd-snapshot-schedule", "")
	cs, err := kubernetes.NewForConfig(unthrottledConfig(t, s.kubeconfig))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Go(func() {
			for i := next.Add(1); i <= objects; i = next.Add(1) {
				var err error
				if i%2 == 0 {
					_, err = cs.CoreV1().ConfigMaps("default").Create(context.Background(), &corev1.ConfigMap{
						ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", i)}, Data: map[string]string{"i": fmt.Sprint(i)},
					}, metav1.CreateOptions{})
				} else {
					_, err = cs.CoreV1().Secrets("default").Create(context.Background(), &corev1.Secret{
						ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("s-%d", i)}, StringData: map[string]string{"i": fmt.Sprint(i)},
					}, metav1.CreateOptions{})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("created %d objects in %v", objects, time.Since(start))

	start = time.Now()
	out := s.snapshotCmd(t, "save")
	saveTook := time.Since(start)
	path := snapshotField(t, out, "path")
	if st := snapshotField(t, out, "objects"); !strings.Contains(st, "configmaps 5000") || !strings.Contains(st, "secrets 5001") {
		t.Errorf("objects: %s", st)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if out, err := restoreSnapshot(dataDir, path); err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	restoreTook := time.Since(start)
	start = time.Now()
	s2 := startServer(t, dataDir, "127.0.0.1:0", "--disable-agent", "--disable-controllers", "--etcd-snapshot-schedule", "")
	startTook := time.Since(start)
	secrets, err := kubernetes.NewForConfig(unthrottledConfig(t, s2.kubeconfig))
	if err != nil {
		t.Fatal(err)
	}
	list, err := secrets.CoreV1().Secrets("default").List(context.Background(), metav1.ListOptions{})
	if err != nil || len(list.Items) != objects/2 {
		t.Fatalf("secrets after restore: %d, %v", len(list.Items), err)
	}
	t.Logf("%d objects: snapshot %s (%s), save %v, restore %v, first start after it %v",
		objects, snapshotField(t, out, "name"), snapshotField(t, out, "size"), saveTook.Round(time.Millisecond), restoreTook.Round(time.Millisecond), startTook.Round(time.Millisecond))
}

// unthrottledConfig is the client configuration of a kubeconfig, unthrottled.
func unthrottledConfig(t *testing.T, kubeconfig string) *rest.Config {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = -1, 0
	return cfg
}
