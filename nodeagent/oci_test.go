package nodeagent

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	corev1 "k8s.io/api/core/v1"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/apiserver/apiservertest"
	"skiff.dev/skiff/nodeagent/image/imagetest"
	"skiff.dev/skiff/nodeagent/network/nettest"
	"skiff.dev/skiff/nodeagent/shim"
)

func TestMain(m *testing.M) {
	shim.RunIfAsked() // the OCI runtime starts this binary as the shim
	os.Exit(m.Run())
}

// ociCluster is an apiserver, a loopback registry with a busybox image and
// an agent on runc.
type ociCluster struct {
	s        *apiservertest.Server
	admin    client.Client
	http     *http.Client
	cfg      Config
	registry string
	img      v1.Image
	image    string
	// rootImage is busybox run as root, with no entrypoint.
	rootImage string
	missing   string
	// stops stops each node's agent.
	stops map[string]func()
}

// airgapImage is only in the archive the agent imports: no registry has it.
const airgapImage = "airgap.example/busybox:1"

func startOCICluster(t *testing.T) *ociCluster {
	t.Helper()
	c := newOCICluster(t)
	c.cfg = c.nodeConfig(t, "n1")
	nettest.Uplink(t, c.cfg.NetNS, "10.250.1.1/24")
	// Air-gap: an image archive in {data-dir}/images is imported at start.
	airgap, err := name.ParseReference(airgapImage)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(c.cfg.DataDir, importDir), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(filepath.Join(c.cfg.DataDir, importDir, "busybox.tar"), airgap, c.img); err != nil {
		t.Fatal(err)
	}
	c.startNode(t, c.cfg, "10.244.1.0/24")
	return c
}

// newOCICluster is the apiserver and the registry, without nodes.
func newOCICluster(t *testing.T) *ociCluster {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("running containers needs root")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("runc is not installed (make test installs it)")
	}
	nettest.Skip(t)
	registry := imagetest.Registry(t)
	img := imagetest.Busybox(t, v1.Config{
		Entrypoint: []string{"sh", "-c"}, Cmd: []string{"echo from the image"},
		Env: []string{"PATH=/bin", "FROM_IMAGE=yes"}, WorkingDir: "/tmp", User: "app",
	})
	c := &ociCluster{
		s: apiservertest.Start(t), registry: registry, img: img, image: imagetest.Push(t, registry, "busybox:1", img), missing: registry + "/missing:1",
		rootImage: imagetest.Push(t, registry, "busybox-root:1", imagetest.Busybox(t, v1.Config{Env: []string{"PATH=/bin"}})),
	}
	var err error
	if c.http, err = rest.HTTPClientFor(c.s.Admin); err != nil {
		t.Fatal(err)
	}
	return c
}

// nodeConfig is an agent on runc whose networking lives in a namespace
// of its own, acting as its host.
func (c *ociCluster) nodeConfig(t *testing.T, node string) Config {
	cfg := testConfig(c.s, t.TempDir(), node)
	cfg.Runtime, cfg.InsecureRegistries = "runc", []string{c.registry}
	cfg.Backoff = Backoff{Base: 300 * time.Millisecond, Max: 2 * time.Second}
	cfg.ClusterCIDR, cfg.NetNS = "10.244.0.0/16", nettest.Host(t, node)
	return cfg
}

// runNode runs the agent cfg until the test ends or restartAgent.
func (c *ociCluster) runNode(t *testing.T, cfg Config) {
	t.Helper()
	a, stop := runAgent(t, cfg)
	if c.admin == nil {
		c.admin = adminClient(t, c.s, a)
	}
	if c.stops == nil {
		c.stops = map[string]func(){}
	}
	c.stops[cfg.NodeName] = stop
	// Before the agent stops (cleanups run last first): delete every
	// Instance, so no container, mount or network outlives the test.
	t.Cleanup(func() { c.deleteAll(t) })
}

// restartAgent stops n1's agent and runs it again with the same data.
func (c *ociCluster) restartAgent(t *testing.T) {
	t.Helper()
	c.stops["n1"]()
	c.runNode(t, c.cfg)
}

// startNode runs an agent and gives its Node a subnet, as the control
// plane's node IPAM would.
func (c *ociCluster) startNode(t *testing.T, cfg Config, subnet string) {
	t.Helper()
	c.runNode(t, cfg)
	ctx := context.Background()
	var n skiffv1alpha1.Node
	eventually(t, "node "+cfg.NodeName+" with its agent endpoint", func() bool {
		return c.admin.Get(ctx, client.ObjectKey{Name: cfg.NodeName}, &n) == nil && n.Status.AgentEndpoint != ""
	})
	patch := client.MergeFrom(n.DeepCopy())
	n.Spec.InstanceCIDR = subnet
	if err := c.admin.Patch(ctx, &n, patch); err != nil {
		t.Fatal(err)
	}
}

func (c *ociCluster) deleteAll(t *testing.T) {
	ctx := context.Background()
	if err := c.admin.DeleteAllOf(ctx, &skiffv1alpha1.Instance{}, client.InNamespace("default")); err != nil {
		t.Errorf("delete instances: %v", err)
		return
	}
	eventually(t, "every instance gone", func() bool {
		var list skiffv1alpha1.InstanceList
		return c.admin.List(ctx, &list) == nil && len(list.Items) == 0
	})
}

func (c *ociCluster) run(t *testing.T, name string, mutate func(*skiffv1alpha1.Instance)) *skiffv1alpha1.Instance {
	t.Helper()
	return c.runOn(t, "n1", name, mutate)
}

func (c *ociCluster) runOn(t *testing.T, node, name string, mutate func(*skiffv1alpha1.Instance)) *skiffv1alpha1.Instance {
	t.Helper()
	inst := boundInstance(name, node)
	inst.Spec.Containers[0].Image = c.image
	inst.Spec.TerminationGracePeriodSeconds = ptr.To[int64](5)
	if mutate != nil {
		mutate(inst)
	}
	createBound(t, c.admin, inst, node)
	return inst
}

// waitFor polls the Instance until cond holds and returns it.
func (c *ociCluster) waitFor(t *testing.T, inst *skiffv1alpha1.Instance, what string, cond func(*skiffv1alpha1.Instance) bool) *skiffv1alpha1.Instance {
	t.Helper()
	var got skiffv1alpha1.Instance
	deadline := time.Now().Add(60 * time.Second)
	for {
		if err := c.admin.Get(context.Background(), client.ObjectKeyFromObject(inst), &got); err == nil && cond(&got) {
			return &got
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance %s: timed out waiting for %s; status %+v", inst.Name, what, got.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func running(i *skiffv1alpha1.Instance) bool {
	return i.Status.Phase == skiffv1alpha1.InstanceRunning && meta.IsStatusConditionTrue(i.Status.Conditions, skiffv1alpha1.InstanceReady)
}

// logs reads the log subresource through the apiserver.
func (c *ociCluster) logs(ctx context.Context, name, query string) (*http.Response, error) {
	u := fmt.Sprintf("%s/apis/skiff.dev/v1alpha1/namespaces/default/instances/%s/log?%s", c.s.URL, name, query)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	return c.http.Do(req)
}

func (c *ociCluster) logText(t *testing.T, name, query string) string {
	t.Helper()
	resp, err := c.logs(context.Background(), name, query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("log of %s?%s: %s: %s", name, query, resp.Status, body)
	}
	return string(body)
}

// TestInstancesOnRunc runs Instances as real containers from an image
// served by a loopback registry.
func TestInstancesOnRunc(t *testing.T) {
	c := startOCICluster(t)
	ctx := context.Background()

	t.Run("image config, env, user and logs", func(t *testing.T) {
		inst := c.run(t, "hello", func(i *skiffv1alpha1.Instance) {
			i.Spec.Containers[0].Args = []string{"echo args=$0 env=$FROM_IMAGE/$MINE uid=$(id -u) cwd=$(pwd); exec sleep 1000", "x"}
			i.Spec.Containers[0].Env = []skiffv1alpha1.EnvVar{{Name: "MINE", Value: "mine"}}
		})
		got := c.waitFor(t, inst, "Running and Ready", running)
		cs := got.Status.ContainerStatuses[0]
		if !strings.Contains(cs.ImageID, "@sha256:") || cs.ContainerID == "" || cs.State.Running == nil || got.Status.HostIP == "" {
			t.Errorf("container status %+v, hostIP %q: want an image digest, an id, running", cs, got.Status.HostIP)
		}
		want := "args=x env=yes/mine uid=1000 cwd=/tmp\n"
		var log string
		eventually(t, "the container's output in its log", func() bool {
			log = c.logText(t, inst.Name, "")
			return log == want
		})
		if ts := c.logText(t, inst.Name, "timestamps=true"); !strings.HasSuffix(ts, " "+want) {
			t.Errorf("log with timestamps %q", ts)
		}
	})

	t.Run("bad log requests name what is wrong", func(t *testing.T) {
		for query, want := range map[string]string{
			"tailLines=-1":      "tailLines",
			"sinceSeconds=soon": "sinceSeconds",
			"container=nope":    "container nope is not valid for instance hello, choose one of: [main]",
			"sinceSeconds=5&sinceTime=2026-01-01T00:00:00Z": "sinceTime",
		} {
			resp, err := c.logs(ctx, "hello", query)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode < 400 || resp.StatusCode >= 500 || !strings.Contains(string(body), want) {
				t.Errorf("log?%s: %s %s, want a client error naming %q", query, resp.Status, body, want)
			}
		}
	})

	t.Run("follow", func(t *testing.T) {
		inst := c.run(t, "ticker", func(i *skiffv1alpha1.Instance) {
			i.Spec.Containers[0].Args = []string{"i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"}
		})
		c.waitFor(t, inst, "Running", running)
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		resp, err := c.logs(fctx, inst.Name, "follow=true&tailLines=1")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var lines []string
		for len(lines) < 10 && sc.Scan() {
			lines = append(lines, sc.Text())
		}
		if len(lines) < 10 {
			t.Fatalf("follow gave %q, %v", lines, sc.Err())
		}
		var first int
		fmt.Sscanf(lines[0], "tick %d", &first)
		for i, l := range lines {
			if l != fmt.Sprintf("tick %d", first+i) {
				t.Fatalf("followed lines %q: not consecutive ticks", lines)
			}
		}
	})

	t.Run("exit code with restartPolicy Never", func(t *testing.T) {
		inst := c.run(t, "exits", func(i *skiffv1alpha1.Instance) {
			i.Spec.RestartPolicy = skiffv1alpha1.RestartPolicyNever
			i.Spec.Containers[0].Args = []string{"exit 3"}
		})
		got := c.waitFor(t, inst, "Failed", func(i *skiffv1alpha1.Instance) bool { return i.Status.Phase == skiffv1alpha1.InstanceFailed })
		term := got.Status.ContainerStatuses[0].State.Terminated
		if term == nil || term.ExitCode != 3 || term.Reason != "Error" || term.FinishedAt.IsZero() {
			t.Errorf("terminated state %+v, want exit code 3, reason Error", term)
		}
	})

	t.Run("crash loop back-off and the previous log", func(t *testing.T) {
		inst := c.run(t, "crasher", func(i *skiffv1alpha1.Instance) {
			i.Spec.Containers[0].Args = []string{"echo crashing; exit 1"}
		})
		sawBackOff := false
		c.waitFor(t, inst, "CrashLoopBackOff and two restarts", func(i *skiffv1alpha1.Instance) bool {
			if len(i.Status.ContainerStatuses) == 0 {
				return false
			}
			cs := i.Status.ContainerStatuses[0]
			if w := cs.State.Waiting; w != nil && w.Reason == "CrashLoopBackOff" {
				sawBackOff = true
			}
			if last := cs.LastTerminationState.Terminated; sawBackOff && (last == nil || last.ExitCode != 1 || last.Reason != "Error") {
				t.Errorf("lastState %+v in back-off, want the run that exited 1 (Error)", cs.LastTerminationState)
			}
			return sawBackOff && cs.RestartCount >= 2
		})
		if prev := c.logText(t, inst.Name, "previous=true"); prev != "crashing\n" {
			t.Errorf("previous log %q, want %q", prev, "crashing\n")
		}
	})

	t.Run("image pull failure", func(t *testing.T) {
		inst := c.run(t, "no-image", func(i *skiffv1alpha1.Instance) { i.Spec.Containers[0].Image = c.missing })
		reasons := map[string]string{}
		var order []string // reasons in the order first seen
		c.waitFor(t, inst, "ErrImagePull then ImagePullBackOff", func(i *skiffv1alpha1.Instance) bool {
			if len(i.Status.ContainerStatuses) > 0 && i.Status.ContainerStatuses[0].State.Waiting != nil {
				w := i.Status.ContainerStatuses[0].State.Waiting
				if _, seen := reasons[w.Reason]; !seen {
					order = append(order, w.Reason)
				}
				reasons[w.Reason] = w.Message
			}
			return reasons["ErrImagePull"] != "" && reasons["ImagePullBackOff"] != ""
		})
		// The failed pull shows (for half its back-off) before the
		// back-off does, as a Pod's does.
		if e, b := slices.Index(order, "ErrImagePull"), slices.Index(order, "ImagePullBackOff"); e > b {
			t.Errorf("waiting reasons in the order %v: want ErrImagePull before ImagePullBackOff", order)
		}
		if msg := reasons["ErrImagePull"]; !strings.Contains(msg, "NAME_UNKNOWN") || !strings.Contains(msg, c.missing) {
			t.Errorf("ErrImagePull message %q: want the registry's words and the image", msg)
		}
		// kubectl describe shows why, as for a Pod: Warning Events Failed
		// (with the registry's words) and BackOff.
		eventually(t, "Failed and BackOff Events", func() bool {
			var list corev1.EventList
			if err := c.admin.List(ctx, &list, client.InNamespace(inst.Namespace)); err != nil {
				return false
			}
			seen := map[string]bool{}
			for _, e := range list.Items {
				if e.InvolvedObject.UID == inst.UID && e.Type == corev1.EventTypeWarning {
					seen[e.Reason] = seen[e.Reason] || e.Reason != "Failed" || strings.Contains(e.Message, "NAME_UNKNOWN")
				}
			}
			return seen["Failed"] && seen["BackOff"]
		})
	})

	t.Run("stops do not hold up starts", func(t *testing.T) {
		// More Instances than the agent has workers, each ignoring SIGTERM
		// with a long grace period, are deleted; a new Instance runs long
		// before their grace periods end.
		ctx := context.Background()
		var stubborn []*skiffv1alpha1.Instance
		for i := range 6 {
			inst := c.run(t, fmt.Sprintf("stubborn-%d", i), func(i *skiffv1alpha1.Instance) {
				i.Spec.Containers[0].Args = []string{"trap '' TERM; while true; do sleep 1; done"}
				i.Spec.TerminationGracePeriodSeconds = ptr.To[int64](40)
			})
			stubborn = append(stubborn, inst)
		}
		for _, inst := range stubborn {
			c.waitFor(t, inst, "Running", running)
		}
		for _, inst := range stubborn {
			if err := c.admin.Delete(ctx, inst); err != nil {
				t.Fatal(err)
			}
		}
		start := time.Now()
		fresh := c.run(t, "fresh", func(i *skiffv1alpha1.Instance) { i.Spec.Containers[0].Args = []string{"exec sleep 1000"} })
		c.waitFor(t, fresh, "Running while others stop", running)
		if took := time.Since(start); took > 20*time.Second {
			t.Errorf("a new Instance took %s to run while 6 others stopped: stops held up starts", took)
		}
		for _, inst := range stubborn {
			var got skiffv1alpha1.Instance
			if err := c.admin.Get(ctx, client.ObjectKeyFromObject(inst), &got); err != nil || got.DeletionTimestamp.IsZero() {
				t.Errorf("%s: %v; want it still stopping (its grace period is 40 s)", inst.Name, err)
			}
		}
		// Then the grace periods end: SIGKILL, and they are gone.
		for _, inst := range stubborn {
			inst := inst
			deadline := time.Now().Add(90 * time.Second)
			for {
				err := c.admin.Get(ctx, client.ObjectKeyFromObject(inst), &skiffv1alpha1.Instance{})
				if apierrors.IsNotFound(err) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s still there 90 s after its delete", inst.Name)
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
	})

	t.Run("air-gapped image", func(t *testing.T) {
		inst := c.run(t, "airgap", func(i *skiffv1alpha1.Instance) {
			i.Spec.Containers[0].Image = airgapImage
			i.Spec.Containers[0].Args = []string{"exec sleep 1000"}
		})
		c.waitFor(t, inst, "Running from the imported image", running)
	})

	t.Run("agent endpoint: metrics and logs only for the apiserver, health for all", func(t *testing.T) {
		var n skiffv1alpha1.Node
		if err := c.admin.Get(ctx, client.ObjectKey{Name: "n1"}, &n); err != nil {
			t.Fatal(err)
		}
		// The test checks the agent's answers, not its certificate.
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		get := func(path string) (int, string) {
			resp, err := hc.Get("https://" + n.Status.AgentEndpoint + path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(body)
		}
		if code, _ := get("/metrics"); code != http.StatusForbidden {
			t.Errorf("/metrics without the apiserver's certificate: %d, want 403", code)
		}
		// Through the API server, as an admin.
		resp, err := c.http.Get(c.s.URL + "/apis/skiff.dev/v1alpha1/nodes/n1/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		code, metrics := resp.StatusCode, string(body)
		if code != http.StatusOK {
			t.Fatalf("nodes/n1/metrics: %d %s", code, metrics)
		}
		for _, want := range []string{
			"skiff_containers_created_total ", "skiff_container_creation_errors_total ",
			"skiff_container_run_duration_seconds_count ", "skiff_image_pull_duration_seconds_count 1\n",
			`skiff_instances{phase="Running"} `, `skiff_instances{phase="Failed"} 1`,
		} {
			if !strings.Contains(metrics, want) {
				t.Errorf("/metrics lacks %q", want)
			}
		}
		if strings.Contains(metrics, "skiff_containers_created_total 0\n") {
			t.Error("skiff_containers_created_total is 0 after containers ran")
		}
		if code, body := get("/healthz"); code != http.StatusOK || body != "ok\n" {
			t.Errorf("/healthz: %d %q", code, body)
		}
		if code, body := get("/health"); code != http.StatusOK || !strings.Contains(body, `"runtime":{"status":"healthy","name":"runc"}`) {
			t.Errorf("/health: %d %q", code, body)
		}
		if code, _ := get("/containerLogs/default/hello?container=main"); code != http.StatusForbidden {
			t.Errorf("logs without the apiserver's certificate: %d, want 403", code)
		}
	})

	t.Run("graceful delete", func(t *testing.T) {
		inst := c.run(t, "graceful", func(i *skiffv1alpha1.Instance) {
			i.Spec.Containers[0].Args = []string{"trap 'echo got TERM; exit 0' TERM; echo up; while true; do sleep 0.1; done"}
		})
		got := c.waitFor(t, inst, "Running", running)
		id := containerID(got, "main")
		eventually(t, "the trap set", func() bool { return c.logText(t, inst.Name, "") == "up\n" })
		if !controllerHolds(got) {
			t.Fatalf("finalizers %v: want %s", got.Finalizers, skiffv1alpha1.AgentFinalizer)
		}
		if err := c.admin.Delete(ctx, got); err != nil {
			t.Fatal(err)
		}
		eventually(t, "instance gone", func() bool {
			return apierrors.IsNotFound(c.admin.Get(ctx, client.ObjectKeyFromObject(inst), &skiffv1alpha1.Instance{}))
		})
		mounts, _ := os.ReadFile("/proc/self/mountinfo")
		if strings.Contains(string(mounts), filepath.Join(c.cfg.DataDir, rootfsDir, id)) {
			t.Errorf("rootfs of %s is still mounted", id)
		}
		for _, p := range []string{filepath.Join(c.cfg.DataDir, containersDir, id), filepath.Join(c.cfg.DataDir, rootfsDir, id)} {
			if _, err := os.Stat(p); !os.IsNotExist(err) {
				t.Errorf("%s is left behind: %v", p, err)
			}
		}
	})
}

func controllerHolds(i *skiffv1alpha1.Instance) bool {
	for _, f := range i.Finalizers {
		if f == skiffv1alpha1.AgentFinalizer {
			return true
		}
	}
	return false
}
