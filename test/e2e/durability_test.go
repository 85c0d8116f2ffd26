package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// workloadUIDs lists the workloads in the default namespace as name -> uid.
func (s *server) workloadUIDs(t *testing.T) map[string]string {
	t.Helper()
	out := s.jsonpath(t, `{range .items[*]}{.metadata.name}{" "}{.metadata.uid}{"\n"}{end}`, "wl")
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			m[f[0]] = f[1]
		}
	}
	return m
}

func TestDurabilityRestart(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	dataDir := t.TempDir()
	s := startServer(t, dataDir, "127.0.0.1:0")

	want := map[string]string{}
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("persist-%d", i)
		s.mustKubectl(t, "apply", "-f", writeFile(t, name+".yaml", workloadYAML(name, "", name, fmt.Sprintf("replicas: %d", i))))
		want[name] = s.jsonpath(t, "{.metadata.uid}", "wl", name)
		if want[name] == "" {
			t.Fatalf("workload %s has no uid", name)
		}
	}
	if err := s.stop(); err != nil {
		t.Errorf("graceful shutdown on SIGTERM: %v (want exit status 0)", err)
	}

	s2 := startServer(t, dataDir, "127.0.0.1:0")
	got := s2.workloadUIDs(t)
	for name, uid := range want {
		if got[name] != uid {
			t.Errorf("after restart workload %s has uid %q, want %q", name, got[name], uid)
		}
	}
	if len(got) != len(want) {
		t.Errorf("after restart workloads = %v, want %v", got, want)
	}
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("persist-%d", i)
		if r := s2.jsonpath(t, "{.spec.replicas}", "wl", name); r != fmt.Sprint(i) {
			t.Errorf("after restart %s replicas = %s, want %d", name, r, i)
		}
	}
	// The restarted server still accepts writes.
	s2.mustKubectl(t, "scale", "wl", "persist-1", "--replicas=7")
}

func TestDurabilityKill9DuringCreates(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	const (
		total       = 1000
		workers     = 32
		killAfter   = 300
		killTimeout = 30 * time.Second
	)
	dataDir := t.TempDir()
	s := startServer(t, dataDir, "127.0.0.1:0")

	cfg, err := clientcmd.BuildConfigFromFlags("", s.kubeconfig)
	if err != nil {
		t.Fatalf("load %s: %v", s.kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 1000, 1000
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatalf("http client: %v", err)
	}
	url := strings.TrimSuffix(cfg.Host, "/") + "/apis/skiff.dev/v1alpha1/namespaces/default/workloads"

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu        sync.Mutex
		acked     []string
		errCounts = map[string]int{}
		nAcked    atomic.Int64
		reached   = make(chan struct{})
		reachOnce sync.Once
		work      = make(chan int)
		wg        sync.WaitGroup
	)
	create := func(i int) {
		name := fmt.Sprintf("dur-%04d", i)
		body := fmt.Sprintf(`{"apiVersion":"skiff.dev/v1alpha1","kind":"Workload","metadata":{"name":%q},`+
			`"spec":{"template":{"metadata":{"labels":{"app":"dur"}},"spec":{"containers":[{"name":"c","image":"busybox:1.36"}]}}}}`, name)
		rctx, rcancel := context.WithTimeout(ctx, 60*time.Second)
		defer rcancel()
		req, err := http.NewRequestWithContext(rctx, http.MethodPost, url, bytes.NewBufferString(body))
		if err != nil {
			panic(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			mu.Lock()
			errCounts["transport error"]++
			mu.Unlock()
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		mu.Lock()
		defer mu.Unlock()
		if resp.StatusCode == http.StatusCreated {
			acked = append(acked, name)
			if nAcked.Add(1) >= killAfter {
				reachOnce.Do(func() { close(reached) })
			}
			return
		}
		errCounts[fmt.Sprintf("HTTP %d", resp.StatusCode)]++
	}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				create(i)
			}
		}()
	}
	allDone := make(chan struct{})
	go func() {
		defer close(allDone)
		defer close(work)
		for i := 0; i < total; i++ {
			select {
			case work <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	workersDone := make(chan struct{})
	go func() {
		<-allDone
		wg.Wait()
		close(workersDone)
	}()

	select {
	case <-reached:
	case <-workersDone:
		t.Logf("all %d creates finished before %d were acknowledged", total, killAfter)
	case <-time.After(killTimeout):
		t.Logf("only %d creates acknowledged after %v; killing anyway", nAcked.Load(), killTimeout)
	}
	if early := s.exitedEarly(); early != "" {
		t.Fatal(early)
	}
	beforeKill := nAcked.Load()
	t.Logf("SIGKILL to skiff server pid %d after %d acknowledged creates", s.pid(), beforeKill)
	if err := syscall.Kill(s.pid(), syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9: %v", err)
	}
	s.kill9() // reap
	cancel()  // abandon what was not sent yet
	select {
	case <-workersDone:
	case <-time.After(2 * time.Minute):
		t.Fatalf("create workers did not finish after the kill")
	}

	mu.Lock()
	ackedNames := slices.Clone(acked)
	errs := fmt.Sprint(errCounts)
	mu.Unlock()
	t.Logf("acknowledged creates: %d before the kill, %d in total; failures: %s", beforeKill, len(ackedNames), errs)
	if beforeKill < 1 {
		t.Fatalf("no create was acknowledged before the kill; failures: %s", errs)
	}
	if n := errCounts["transport error"]; len(ackedNames) == total || n == 0 {
		t.Logf("note: the kill may not have hit requests in flight (acked %d of %d, %d transport errors)", len(ackedNames), total, n)
	}

	s2 := startServer(t, dataDir, "127.0.0.1:0")
	present := s2.workloadUIDs(t)
	var missing []string
	for _, name := range ackedNames {
		if _, ok := present[name]; !ok {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	t.Logf("after restart: %d workloads present, %d acknowledged, %d acknowledged but missing", len(present), len(ackedNames), len(missing))
	if len(missing) > 0 {
		t.Errorf("%d acknowledged (201) creates lost after kill -9 and restart: %v", len(missing), missing)
	}
	for name := range present {
		if !strings.HasPrefix(name, "dur-") {
			t.Errorf("unexpected workload %q after restart", name)
		}
	}
	// The recovered server still serves writes.
	s2.mustKubectl(t, "apply", "-f", writeFile(t, "after.yaml", workloadYAML("after-restart", "", "after")))
}
