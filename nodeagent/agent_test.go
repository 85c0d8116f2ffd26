package nodeagent

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/apiserver/apiservertest"
	"skiff.dev/skiff/identity"
)

func testConfig(s *apiservertest.Server, dataDir, node string) Config {
	cfg := DefaultConfig()
	cfg.Server, cfg.JoinToken, cfg.DataDir, cfg.NodeName = s.URL, s.JoinTokenFile, dataDir, node
	cfg.LeaseInterval = 100 * time.Millisecond
	cfg.Runtime, cfg.Listen = "sim", "127.0.0.1:0"
	return cfg
}

func adminClient(t *testing.T, s *apiservertest.Server, a *Agent) client.Client {
	t.Helper()
	c, err := client.New(s.Admin, client.Options{Scheme: a.scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// runAgent runs an agent until stop is called or the test ends; an error
// it ends with fails the test.
func runAgent(t *testing.T, cfg Config) (a *Agent, stop func()) {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a, apiservertest.Run(t, context.Background(), a.Run)
}

// bootClient authenticates with s's join token, as an agent registering.
func bootClient(t *testing.T, s *apiservertest.Server, a *Agent) client.Client {
	t.Helper()
	tok, err := readJoinToken(s.JoinTokenFile)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := serverCertificate(context.Background(), s.URL, tok)
	if err != nil {
		t.Fatal(err)
	}
	boot, err := client.New(bootstrapConfig(s.URL, tok, ca), client.Options{Scheme: a.scheme})
	if err != nil {
		t.Fatal(err)
	}
	return boot
}

// createBound creates inst and binds it to node, as the scheduler would.
func createBound(t *testing.T, c client.Client, inst *skiffv1alpha1.Instance, node string) {
	t.Helper()
	ctx := context.Background()
	if err := c.Create(ctx, inst); err != nil {
		t.Fatal(err)
	}
	if err := c.SubResource("binding").Create(ctx, inst, &skiffv1alpha1.Binding{NodeName: node}); err != nil {
		t.Fatal(err)
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAgentJoinsReportsAndRenews(t *testing.T) {
	s := apiservertest.Start(t)
	dataDir := filepath.Join(t.TempDir(), "made-by-the-agent")
	cfg := testConfig(s, dataDir, "n1")
	cfg.Labels = map[string]string{"topology.kubernetes.io/zone": "a"}
	cfg.Taints = []skiffv1alpha1.Taint{{Key: "dedicated", Value: "gpu", Effect: skiffv1alpha1.TaintEffectNoSchedule}}
	cfg.Reserved = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")}
	cfg.StatusInterval = cfg.LeaseInterval
	a, _ := runAgent(t, cfg)
	admin := adminClient(t, s, a)
	ctx := context.Background()

	var node skiffv1alpha1.Node
	eventually(t, "node n1 Ready", func() bool {
		return admin.Get(ctx, client.ObjectKey{Name: "n1"}, &node) == nil && node.Status.Phase == skiffv1alpha1.NodeReady
	})
	id, _, err := identity.LoadOrCreate(dataDir + "/" + keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if node.Spec.PublicKey != id.PublicKeyString() {
		t.Errorf("spec.publicKey %q, want the agent's key %q", node.Spec.PublicKey, id.PublicKeyString())
	}
	wantCPU := resource.NewMilliQuantity(int64(runtime.NumCPU())*1000, resource.DecimalSI)
	if got := node.Status.Capacity[corev1.ResourceCPU]; got.Cmp(*wantCPU) != 0 {
		t.Errorf("capacity cpu %s, want %s", got.String(), wantCPU)
	}
	wantCPU.Sub(resource.MustParse("500m"))
	if got := node.Status.Allocatable[corev1.ResourceCPU]; got.Cmp(*wantCPU) != 0 {
		t.Errorf("allocatable cpu %s, want %s (capacity minus --reserved)", got.String(), wantCPU)
	}
	if mem := node.Status.Capacity[corev1.ResourceMemory]; mem.Sign() <= 0 {
		t.Errorf("capacity memory %s", mem.String())
	}
	if node.Status.NodeInfo.OperatingSystem != "linux" || node.Status.NodeInfo.KernelVersion == "" {
		t.Errorf("nodeInfo %+v", node.Status.NodeInfo)
	}
	if node.Labels["topology.kubernetes.io/zone"] != "a" || len(node.Spec.Taints) != 1 {
		t.Errorf("labels %v taints %v, want the flags'", node.Labels, node.Spec.Taints)
	}

	renewed := func() time.Time {
		var l coordinationv1.Lease
		if err := admin.Get(ctx, client.ObjectKey{Namespace: skiffv1alpha1.NodeLeaseNamespace, Name: "n1"}, &l); err != nil || l.Spec.RenewTime == nil {
			return time.Time{}
		}
		return l.Spec.RenewTime.Time
	}
	var first time.Time
	eventually(t, "lease skiff-node-lease/n1", func() bool { first = renewed(); return !first.IsZero() })
	eventually(t, "lease renewal", func() bool { return renewed().After(first) })

	// A status refresh that changes nothing writes nothing (the agent does
	// not send it; the apiserver would drop it): every agent watches every
	// Node. Several refreshes and renewals pass meanwhile.
	if err := admin.Get(ctx, client.ObjectKey{Name: "n1"}, &node); err != nil {
		t.Fatal(err)
	}
	rv, since := node.ResourceVersion, renewed()
	eventually(t, "three lease renewals", func() bool { return renewed().After(since.Add(3 * cfg.LeaseInterval)) })
	if err := admin.Get(ctx, client.ObjectKey{Name: "n1"}, &node); err != nil || node.ResourceVersion != rv {
		t.Errorf("node n1 rewritten by unchanged status refreshes: resourceVersion %s, was %s (%v)", node.ResourceVersion, rv, err)
	}
}

func TestRegisteredAgentNeedsNoToken(t *testing.T) {
	s := apiservertest.Start(t)
	dataDir := t.TempDir()
	cfg := testConfig(s, dataDir, "n1")
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := join(context.Background(), cfg, a.scheme, joinOptions{}); err != nil {
		t.Fatalf("first join: %v", err)
	}
	// The token pins the server certificate; its secret is not needed again.
	tok, err := readJoinToken(s.JoinTokenFile)
	if err != nil {
		t.Fatal(err)
	}
	tok.Secret = []byte("a-secret-the-server-never-issued")
	cfg.JoinToken = tok.String()
	if _, err := join(context.Background(), cfg, a.scheme, joinOptions{}); err != nil {
		t.Fatalf("second join with a wrong secret: %v; a registered agent authenticates with its key", err)
	}
}

// TestJoinClaimsAdminNode: an agent claims a keyless Node an admin made,
// which the control plane has already given a subnet; the subnet stays.
func TestJoinClaimsAdminNode(t *testing.T) {
	s := apiservertest.Start(t)
	cfg := testConfig(s, t.TempDir(), "pre")
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	admin := adminClient(t, s, a)
	pre := &skiffv1alpha1.Node{ObjectMeta: metav1.ObjectMeta{Name: "pre"}, Spec: skiffv1alpha1.NodeSpec{InstanceCIDR: "10.88.7.0/24"}}
	if err := admin.Create(context.Background(), pre); err != nil {
		t.Fatal(err)
	}
	if _, err := join(context.Background(), cfg, a.scheme, joinOptions{}); err != nil {
		t.Fatalf("claiming a keyless Node with a subnet: %v", err)
	}
	var got skiffv1alpha1.Node
	if err := admin.Get(context.Background(), client.ObjectKey{Name: "pre"}, &got); err != nil {
		t.Fatal(err)
	}
	if got.Spec.PublicKey == "" || got.Spec.InstanceCIDR != "10.88.7.0/24" {
		t.Fatalf("claimed Node: key %q, instanceCIDR %q", got.Spec.PublicKey, got.Spec.InstanceCIDR)
	}

	// A PUT of the whole object (apiVersion and kind, as kubectl replace
	// sends it) claims a keyless Node too.
	put := &skiffv1alpha1.Node{ObjectMeta: metav1.ObjectMeta{Name: "put"}}
	if err := admin.Create(context.Background(), put); err != nil {
		t.Fatal(err)
	}
	boot := bootClient(t, s, a)
	key, _ := identity.New()
	put.APIVersion, put.Kind = skiffv1alpha1.SchemeGroupVersion.String(), "Node"
	put.Spec.PublicKey = key.PublicKeyString()
	if err := boot.Update(context.Background(), put); err != nil {
		t.Fatalf("claiming a keyless Node by PUT: %v", err)
	}
}

func TestJoinRefusals(t *testing.T) {
	s := apiservertest.Start(t)
	cfg := testConfig(s, t.TempDir(), "n1")
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := join(context.Background(), cfg, a.scheme, joinOptions{}); err != nil {
		t.Fatal(err)
	}
	tok, _ := readJoinToken(s.JoinTokenFile)

	wrong := tok
	wrong.Secret = []byte("a-secret-the-server-never-issued")
	other := testConfig(s, t.TempDir(), "n2")
	other.JoinToken = wrong.String()
	if _, err := join(context.Background(), other, a.scheme, joinOptions{}); err == nil || !strings.Contains(err.Error(), "refused the join token") {
		t.Errorf("wrong token: %v, want a refusal naming the join token", err)
	}

	pinned := tok
	pinned.CAHash = make([]byte, 32)
	other.JoinToken = pinned.String()
	if _, err := join(context.Background(), other, a.scheme, joinOptions{}); err == nil || !strings.Contains(err.Error(), "does not match the join token") {
		t.Errorf("token pinning another certificate: %v", err)
	}

	impostor := testConfig(s, t.TempDir(), "n1") // same name, new key
	if _, err := join(context.Background(), impostor, a.scheme, joinOptions{}); err == nil || !strings.Contains(err.Error(), "registered with another key") {
		t.Errorf("second agent claiming n1: %v, want a refusal", err)
	}

	// Straight through the API: the join token cannot re-key a node either.
	boot := bootClient(t, s, a)
	// The token reads no Node, and says the same whether the name exists.
	for _, name := range []string{"n1", "never-registered"} {
		if err := boot.Get(context.Background(), client.ObjectKey{Name: name}, &skiffv1alpha1.Node{}); !apierrors.IsForbidden(err) {
			t.Errorf("get node %s with the join token: %v, want Forbidden", name, err)
		}
	}
	var n skiffv1alpha1.Node
	if err := adminClient(t, s, a).Get(context.Background(), client.ObjectKey{Name: "n1"}, &n); err != nil {
		t.Fatal(err)
	}
	dup := &skiffv1alpha1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n3"}, Spec: skiffv1alpha1.NodeSpec{PublicKey: n.Spec.PublicKey}}
	if err := boot.Create(context.Background(), dup); !apierrors.IsForbidden(err) {
		t.Errorf("registering n3 with n1's key: %v, want Forbidden", err)
	}
	stranger, _ := identity.New()
	n.Spec.PublicKey = stranger.PublicKeyString()
	if err := boot.Update(context.Background(), &n); !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err) {
		t.Errorf("re-keying n1 with the join token: %v, want Forbidden", err)
	}
}

func boundInstance(name, node string) *skiffv1alpha1.Instance {
	return &skiffv1alpha1.Instance{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"node": node}},
		Spec: skiffv1alpha1.InstanceSpec{InstanceTemplateSpec: skiffv1alpha1.InstanceTemplateSpec{
			Containers: []skiffv1alpha1.Container{{Name: "main", Image: "busybox:1.36"}},
		}},
	}
}

// TestReportStatusRetriesConflict: the control plane writes a Node's spec
// (its subnet) while the agent reports its status; the agent reads the
// Node again rather than fail (a failed first report ended the agent).
func TestReportStatusRetriesConflict(t *testing.T) {
	s := apiservertest.Start(t)
	cfg := testConfig(s, t.TempDir(), "n1")
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	j, err := join(context.Background(), cfg, a.scheme, joinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	admin := adminClient(t, s, a)
	node, err := client.NewWithWatch(j.config, client.Options{Scheme: a.scheme, HTTPClient: j.http})
	if err != nil {
		t.Fatal(err)
	}
	conflicts := 0
	racing := interceptor.NewClient(node, interceptor.Funcs{
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			if conflicts == 0 {
				// The node IPAM controller's subnet lands first.
				conflicts++
				var n skiffv1alpha1.Node
				if err := admin.Get(ctx, client.ObjectKey{Name: "n1"}, &n); err != nil {
					return err
				}
				patch := client.MergeFrom(n.DeepCopy())
				n.Spec.InstanceCIDR = "10.88.1.0/24"
				if err := admin.Patch(ctx, &n, patch); err != nil {
					return err
				}
			}
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
	})
	m, err := readMachine(cfg.DataDir, cfg.MaxInstances, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.reportStatus(context.Background(), racing, m); err != nil {
		t.Fatalf("report status across a spec write: %v", err)
	}
	var n skiffv1alpha1.Node
	if err := admin.Get(context.Background(), client.ObjectKey{Name: "n1"}, &n); err != nil || n.Status.Phase != skiffv1alpha1.NodeReady || n.Spec.InstanceCIDR == "" {
		t.Fatalf("node after the report: phase %q, instanceCIDR %q (%v)", n.Status.Phase, n.Spec.InstanceCIDR, err)
	}
}

// TestTaintsDrift: the control plane's own taints and the time a taint
// was added are no drift from --taints (the agent warned of one on every
// start).
func TestTaintsDrift(t *testing.T) {
	flag := skiffv1alpha1.Taint{Key: "dedicated", Value: "gpu", Effect: skiffv1alpha1.TaintEffectNoSchedule}
	now := metav1.Now()
	added := flag
	added.TimeAdded = &now
	cp := skiffv1alpha1.Taint{Key: skiffv1alpha1.TaintUnreachable, Effect: skiffv1alpha1.TaintEffectNoExecute, TimeAdded: &now}
	other := skiffv1alpha1.Taint{Key: "dedicated", Value: "db", Effect: skiffv1alpha1.TaintEffectNoSchedule}
	for _, tc := range []struct {
		node  []skiffv1alpha1.Taint
		drift bool
	}{
		{[]skiffv1alpha1.Taint{flag}, false},
		{[]skiffv1alpha1.Taint{added, cp}, false},
		{[]skiffv1alpha1.Taint{cp}, true},
		{[]skiffv1alpha1.Taint{other}, true},
		{[]skiffv1alpha1.Taint{flag, other}, true},
	} {
		if got := taintsDrift(tc.node, []skiffv1alpha1.Taint{flag}); got != tc.drift {
			t.Errorf("node taints %v against --taints %v: drift %v, want %v", tc.node, flag, got, tc.drift)
		}
	}
}

// TestListenCheckedBeforeRegistering: an agent whose --listen address is
// taken stops with an error naming it, and registers no Node.
func TestListenCheckedBeforeRegistering(t *testing.T) {
	s := apiservertest.Start(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := testConfig(s, t.TempDir(), "busy")
	cfg.Listen = taken.Addr().String()
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "--listen") {
		t.Fatalf("Run with a taken --listen: %v, want an error naming --listen", err)
	}
	var n skiffv1alpha1.Node
	if err := adminClient(t, s, a).Get(t.Context(), client.ObjectKey{Name: "busy"}, &n); !apierrors.IsNotFound(err) {
		t.Errorf("the Node of an agent that could not listen: %v, want NotFound", err)
	}
}

// TestConcurrentRegistrationsWithOneKey: two Nodes registered at once
// with one key: exactly one is created (the trust learns keys a moment
// after a Node is stored, so the check must not wait for it).
func TestConcurrentRegistrationsWithOneKey(t *testing.T) {
	s := apiservertest.Start(t)
	a, err := New(testConfig(s, t.TempDir(), "x"))
	if err != nil {
		t.Fatal(err)
	}
	boot := bootClient(t, s, a)
	for round := range 5 {
		key, _ := identity.New()
		errs := make(chan error, 2)
		for i := range 2 {
			go func() {
				errs <- boot.Create(context.Background(), &skiffv1alpha1.Node{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("twin-%d-%d", round, i)},
					Spec:       skiffv1alpha1.NodeSpec{PublicKey: key.PublicKeyString()},
				})
			}()
		}
		created := 0
		for range 2 {
			if err := <-errs; err == nil {
				created++
			} else if !apierrors.IsForbidden(err) {
				t.Errorf("round %d: %v, want Forbidden for the loser", round, err)
			}
		}
		if created != 1 {
			t.Errorf("round %d: %d Nodes created with one key, want 1", round, created)
		}
	}
}

func TestListenAddress(t *testing.T) {
	for _, tc := range []struct{ listen, hostIP, netns, want string }{
		{":10250", "10.0.0.5", "", "10.0.0.5:10250"},
		{"0.0.0.0:10250", "10.0.0.5", "", "0.0.0.0:10250"},
		{"127.0.0.1:0", "10.0.0.5", "", "127.0.0.1:0"},
		{":10250", "", "", ":10250"},
		{":10250", "10.0.0.5", "/run/netns/n1", ":10250"},
	} {
		if got := listenAddress(tc.listen, tc.hostIP, tc.netns); got != tc.want {
			t.Errorf("listenAddress(%q, %q, %q) = %q, want %q", tc.listen, tc.hostIP, tc.netns, got, tc.want)
		}
	}
}
