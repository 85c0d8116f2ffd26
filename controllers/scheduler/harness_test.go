package scheduler

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/apiserver/apiservertest"
	"skiff.dev/skiff/controllers/metrics"
)

var eventually = apiservertest.Eventually

// cluster is a real apiserver and its admin client; with run, the
// scheduler runs against it until the test ends.
type cluster struct {
	t       *testing.T
	ctx     context.Context
	server  *apiservertest.Server
	scheme  *runtime.Scheme
	admin   client.Client
	metrics *metrics.Metrics
	// view reads the scheduler's informers; nil before runScheduler.
	view client.Reader
}

func newCluster(t *testing.T) *cluster {
	s := apiservertest.Start(t)
	scheme := apiservertest.Scheme(t)
	admin, err := client.New(s.Admin, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return &cluster{t: t, ctx: ctx, server: s, scheme: scheme, admin: admin, metrics: metrics.New(prometheus.NewRegistry())}
}

// runScheduler starts a cluster with the scheduler running in a manager.
func runScheduler(t *testing.T) *cluster {
	c := newCluster(t)
	mgr := c.server.Manager(t, c.scheme)
	ctrl := &Controller{Client: mgr.GetClient(), Scheduler: New(Spread), Cache: NewCache(30 * time.Second), Metrics: c.metrics}
	c.view = mgr.GetClient()
	if err := ctrl.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	apiservertest.Run(t, c.ctx, mgr.Start)
	return c
}

// addNode creates n with its status (conditions, allocatable), as its
// agent would report it.
func (c *cluster) addNode(n *skiffv1alpha1.Node) {
	c.t.Helper()
	for i := range n.Status.Conditions {
		n.Status.Conditions[i].Reason, n.Status.Conditions[i].LastTransitionTime = "Test", metav1.Now()
	}
	status := n.Status
	if err := c.admin.Create(c.ctx, n); err != nil {
		c.t.Fatal(err)
	}
	n.Status = status
	if err := c.admin.Status().Update(c.ctx, n); err != nil {
		c.t.Fatal(err)
	}
	if c.view == nil {
		return
	}
	// Instances created next are decided on the scheduler's view: wait
	// until it has the node as written, or a test's placements would race
	// the informer (a node seen not ready yet fits nothing).
	eventually(c.t, "the scheduler's view of node "+n.Name, func() bool {
		var seen skiffv1alpha1.Node
		return c.view.Get(c.ctx, client.ObjectKeyFromObject(n), &seen) == nil && seen.ResourceVersion == n.ResourceVersion
	})
}

func (c *cluster) create(insts ...*skiffv1alpha1.Instance) {
	c.t.Helper()
	for _, inst := range insts {
		if err := c.admin.Create(c.ctx, inst); err != nil {
			c.t.Fatal(err)
		}
	}
}

// get reads an Instance; nil when it does not exist.
func (c *cluster) get(name string) *skiffv1alpha1.Instance {
	c.t.Helper()
	var inst skiffv1alpha1.Instance
	err := c.admin.Get(c.ctx, client.ObjectKey{Namespace: "default", Name: name}, &inst)
	if err != nil {
		if client.IgnoreNotFound(err) == nil {
			return nil
		}
		c.t.Fatal(err)
	}
	return &inst
}

// boundTo waits for the Instance to be bound and returns its node.
func (c *cluster) boundTo(name string) string {
	c.t.Helper()
	var node string
	eventually(c.t, name+" bound", func() bool {
		if inst := c.get(name); inst != nil {
			node = inst.Spec.NodeName
		}
		return node != ""
	})
	return node
}

// unschedulable waits for the Instance's Scheduled=False verdict and
// returns the Instance.
func (c *cluster) unschedulable(name string) *skiffv1alpha1.Instance {
	c.t.Helper()
	var inst *skiffv1alpha1.Instance
	eventually(c.t, name+" unschedulable", func() bool {
		inst = c.get(name)
		return inst != nil && meta.IsStatusConditionFalse(inst.Status.Conditions, skiffv1alpha1.InstanceScheduled)
	})
	return inst
}

// hasEvent reports whether the scheduler recorded an Event with reason
// about the named Instance.
func (c *cluster) hasEvent(name, reason, contains string) bool {
	var evs corev1.EventList
	if c.admin.List(c.ctx, &evs, client.InNamespace("default")) != nil {
		return false
	}
	for _, ev := range evs.Items {
		if ev.InvolvedObject.Name == name && ev.Reason == reason && ev.Source.Component == Component && strings.Contains(ev.Message, contains) {
			return true
		}
	}
	return false
}

// attempts counts the scheduling attempts with a result so far.
func (c *cluster) attempts(result string) float64 {
	return testutil.ToFloat64(c.metrics.ScheduleAttempts.WithLabelValues(result))
}
