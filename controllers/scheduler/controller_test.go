package scheduler

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/apiserver/apiservertest"
)

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestController runs the scheduler against a real apiserver: pending
// Instances are bound without over-committing, one that fits nowhere says
// why, and a new node lets it through.
func TestController(t *testing.T) {
	s := apiservertest.Start(t)
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{skiffv1alpha1.AddToScheme, corev1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	mgr, err := manager.New(s.Admin, manager.Options{
		Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		// Controller names are unique per process; -count=N runs this again.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	c := &Controller{Client: mgr.GetClient(), Scheduler: New(Spread), Cache: NewCache(30 * time.Second)}
	if err := c.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	admin, err := client.New(s.Admin, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}

	addNode := func(name, cpu string) {
		n := node(name, cpu, "4Gi")
		n.Status.Conditions[0].Reason, n.Status.Conditions[0].LastTransitionTime = "AgentReady", metav1.Now()
		status := n.Status
		if err := admin.Create(ctx, n); err != nil {
			t.Fatal(err)
		}
		n.Status = status
		if err := admin.Status().Update(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	addNode("n1", "1")
	addNode("n2", "1")

	// Four Instances of 600m on two 1-cpu nodes: two fit, one per node.
	for i := range 4 {
		inst := instance(fmt.Sprintf("web-%d", i), "600m", "")
		if err := admin.Create(ctx, inst); err != nil {
			t.Fatal(err)
		}
	}
	list := func() (bound map[string][]string, unschedulable []skiffv1alpha1.Instance) {
		var l skiffv1alpha1.InstanceList
		if err := admin.List(ctx, &l); err != nil {
			t.Fatal(err)
		}
		bound = map[string][]string{}
		for _, inst := range l.Items {
			if inst.Spec.NodeName != "" {
				bound[inst.Spec.NodeName] = append(bound[inst.Spec.NodeName], inst.Name)
			} else if meta.IsStatusConditionFalse(inst.Status.Conditions, skiffv1alpha1.InstanceScheduled) {
				unschedulable = append(unschedulable, inst)
			}
		}
		return bound, unschedulable
	}
	var bound map[string][]string
	var waiting []skiffv1alpha1.Instance
	eventually(t, "two bound, two unschedulable", func() bool {
		bound, waiting = list()
		return len(bound["n1"])+len(bound["n2"]) == 2 && len(waiting) == 2
	})
	if len(bound["n1"]) != 1 || len(bound["n2"]) != 1 {
		t.Errorf("placements %v: want one per node, none over-committed", bound)
	}
	msg := meta.FindStatusCondition(waiting[0].Status.Conditions, skiffv1alpha1.InstanceScheduled).Message
	if want := "0/2 nodes are available: 2 insufficient cpu."; msg != want {
		t.Errorf("no-fit message %q, want %q", msg, want)
	}
	eventually(t, "a FailedScheduling event", func() bool {
		var evs corev1.EventList
		if admin.List(ctx, &evs, client.InNamespace("default")) != nil {
			return false
		}
		for _, ev := range evs.Items {
			if ev.Reason == "FailedScheduling" && strings.Contains(ev.Message, "insufficient cpu") && ev.Source.Component == Component {
				return true
			}
		}
		return false
	})

	// A new node with room for both: the waiting ones are retried.
	addNode("n3", "2")
	eventually(t, "the waiting instances bound to the new node", func() bool {
		bound, _ = list()
		return len(bound["n3"]) == 2
	})
	var placed skiffv1alpha1.Instance
	if err := admin.Get(ctx, client.ObjectKey{Namespace: "default", Name: bound["n3"][0]}, &placed); err != nil {
		t.Fatal(err)
	}
	if !meta.IsStatusConditionTrue(placed.Status.Conditions, skiffv1alpha1.InstanceScheduled) {
		t.Errorf("bound instance conditions %+v: want Scheduled=True", placed.Status.Conditions)
	}
}
