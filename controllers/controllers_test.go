package controllers_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/apiserver/apiservertest"
	"skiff.dev/skiff/controllers"
	"skiff.dev/skiff/controllers/scheduler"
	"skiff.dev/skiff/controllers/workload"
	"skiff.dev/skiff/nodeagent"
	"skiff.dev/skiff/nodeagent/runtime"
)

// plane is an in-process control plane: a real apiserver with etcd, the
// controllers, and a fleet of simulated nodes.
type plane struct {
	s     *apiservertest.Server
	admin client.WithWatch
	ctx   context.Context
}

func startPlane(t *testing.T, nodes int, cfg controllers.Config) *plane {
	t.Helper()
	s := apiservertest.Start(t)
	ctx := context.Background()
	start := func(run func(context.Context) error) { apiservertest.Run(t, ctx, run) }
	if nodes > 0 {
		acfg := nodeagent.DefaultConfig()
		acfg.Server, acfg.JoinToken, acfg.DataDir, acfg.NodeName = s.URL, s.JoinTokenFile, filepath.Join(t.TempDir(), "fleet"), "sim"
		acfg.LeaseInterval, acfg.Runtime, acfg.Listen = time.Second, "sim", "127.0.0.1:0"
		fleet, err := nodeagent.NewFleet(acfg, nodes, s.Admin)
		if err != nil {
			t.Fatal(err)
		}
		start(fleet.Run)
	}
	cfg.SkipNameValidation = true
	c, err := controllers.New(cfg, s.Admin)
	if err != nil {
		t.Fatal(err)
	}
	c.ReadFrom(s.Local) // as `skiff server` runs them
	start(c.Start)
	admin, err := client.NewWithWatch(s.Admin, client.Options{Scheme: apiservertest.Scheme(t)})
	if err != nil {
		t.Fatal(err)
	}
	p := &plane{s: s, admin: admin, ctx: ctx}
	apiservertest.WaitReadyNodes(t, admin, nodes)
	return p
}

var eventually = apiservertest.Eventually

func webWorkload(name string, replicas int32, image string) *skiffv1alpha1.Workload {
	return &skiffv1alpha1.Workload{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: skiffv1alpha1.WorkloadSpec{
			Replicas: ptr.To(replicas),
			Template: skiffv1alpha1.InstanceTemplate{
				Metadata: skiffv1alpha1.TemplateMetadata{Labels: map[string]string{"app": name}},
				Spec: skiffv1alpha1.InstanceTemplateSpec{Containers: []skiffv1alpha1.Container{{
					Name: "web", Image: image,
					Resources: skiffv1alpha1.ResourceRequirements{Requests: corev1.ResourceList{
						corev1.ResourceCPU: resourceQuantity("100m"), corev1.ResourceMemory: resourceQuantity("64Mi"),
					}},
				}}},
			},
		},
	}
}

// owned lists the live (not terminating) Instances of w.
func (p *plane) owned(t *testing.T, w *skiffv1alpha1.Workload) []skiffv1alpha1.Instance {
	t.Helper()
	var list skiffv1alpha1.InstanceList
	if err := p.admin.List(p.ctx, &list, client.InNamespace(w.Namespace), client.MatchingLabels{"app": w.Name}); err != nil {
		t.Fatal(err)
	}
	var out []skiffv1alpha1.Instance
	for _, inst := range list.Items {
		if inst.DeletionTimestamp.IsZero() {
			out = append(out, inst)
		}
	}
	return out
}

func running(insts []skiffv1alpha1.Instance, image string) int {
	n := 0
	for _, inst := range insts {
		if inst.Status.Phase == skiffv1alpha1.InstanceRunning && meta.IsStatusConditionTrue(inst.Status.Conditions, skiffv1alpha1.InstanceReady) &&
			(image == "" || inst.Spec.Containers[0].Image == image) {
			n++
		}
	}
	return n
}

func (p *plane) waitRunning(t *testing.T, w *skiffv1alpha1.Workload, n int, image string) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d running instances of %s with %s", n, w.Name, image), func() bool {
		insts := p.owned(t, w)
		return len(insts) == n && running(insts, image) == n
	})
}

func (p *plane) get(t *testing.T, w *skiffv1alpha1.Workload) *skiffv1alpha1.Workload {
	t.Helper()
	var got skiffv1alpha1.Workload
	if err := p.admin.Get(p.ctx, client.ObjectKeyFromObject(w), &got); err != nil {
		t.Fatal(err)
	}
	return &got
}

func (p *plane) update(t *testing.T, w *skiffv1alpha1.Workload, change func(*skiffv1alpha1.Workload)) {
	t.Helper()
	for {
		got := p.get(t, w)
		change(got)
		err := p.admin.Update(p.ctx, got)
		if err == nil {
			return
		}
		if !strings.Contains(err.Error(), "the object has been modified") {
			t.Fatal(err)
		}
	}
}

func (p *plane) events(t *testing.T, w *skiffv1alpha1.Workload) map[string][]string {
	t.Helper()
	var list corev1.EventList
	if err := p.admin.List(p.ctx, &list, client.InNamespace(w.Namespace)); err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, ev := range list.Items {
		if ev.InvolvedObject.Kind == "Workload" && ev.InvolvedObject.Name == w.Name {
			out[ev.Reason] = append(out[ev.Reason], ev.Message)
		}
	}
	return out
}

// TestWorkloadScaleAndRollout: a Workload's Instances are created,
// scheduled and run on simulated nodes; scaling up and down works; a new
// image rolls out watched event by event within maxSurge/maxUnavailable;
// status and Events tell the story.
func TestWorkloadScaleAndRollout(t *testing.T) {
	p := startPlane(t, 3, controllers.DefaultConfig())
	w := webWorkload("web", 3, "registry.local/web:1")
	if err := p.admin.Create(p.ctx, w); err != nil {
		t.Fatal(err)
	}
	p.waitRunning(t, w, 3, "registry.local/web:1")
	for _, inst := range p.owned(t, w) {
		rev := inst.Labels[skiffv1alpha1.RevisionLabel]
		if !strings.HasPrefix(inst.Name, "web-"+rev+"-") || len(rev) != 10 {
			t.Errorf("instance %s: want web-<10-char revision>-<suffix>, revision label %q", inst.Name, rev)
		}
		ref := metav1.GetControllerOf(&inst)
		if ref == nil || ref.Name != "web" || ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion {
			t.Errorf("instance %s: controller reference %+v", inst.Name, ref)
		}
	}
	eventually(t, "status of 3 ready, Available", func() bool {
		st := p.get(t, w).Status
		return st.ReadyReplicas == 3 && st.UpdatedReplicas == 3 && st.AvailableReplicas == 3 &&
			meta.IsStatusConditionTrue(st.Conditions, skiffv1alpha1.WorkloadAvailable) &&
			st.Plan != nil && st.Plan.Urgency == skiffv1alpha1.UrgencyNone && st.LastAvailableRevision == st.UpdateRevision
	})

	p.update(t, w, func(w *skiffv1alpha1.Workload) { w.Spec.Replicas = ptr.To[int32](5) })
	p.waitRunning(t, w, 5, "registry.local/web:1")
	p.update(t, w, func(w *skiffv1alpha1.Workload) { w.Spec.Replicas = ptr.To[int32](2) })
	p.waitRunning(t, w, 2, "registry.local/web:1")
	p.update(t, w, func(w *skiffv1alpha1.Workload) { w.Spec.Replicas = ptr.To[int32](4) })
	p.waitRunning(t, w, 4, "registry.local/web:1")

	// Roll out a new image with maxSurge 1, maxUnavailable 1, watching
	// every Instance event for the budgets: never more than 5 live, never
	// fewer than 3 ready.
	var list skiffv1alpha1.InstanceList
	watcher, err := p.admin.Watch(p.ctx, &list, client.InNamespace("default"), client.MatchingLabels{"app": "web"})
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Stop()
	live := map[string]skiffv1alpha1.Instance{}
	for _, inst := range p.owned(t, w) {
		live[inst.Name] = inst
	}
	p.update(t, w, func(w *skiffv1alpha1.Workload) {
		one := intstr.FromInt32(1)
		w.Spec.Strategy.RollingUpdate = &skiffv1alpha1.RollingUpdate{MaxSurge: &one, MaxUnavailable: &one}
		w.Spec.Template.Spec.Containers[0].Image = "registry.local/web:2"
	})
	timeout := time.After(60 * time.Second)
	maxLive, minReady := 0, 4
	for {
		var ev watch.Event
		select {
		case ev = <-watcher.ResultChan():
		case <-timeout:
			t.Fatalf("rollout did not finish; %d live", len(live))
		}
		inst, ok := ev.Object.(*skiffv1alpha1.Instance)
		if !ok {
			continue
		}
		if ev.Type == watch.Deleted || !inst.DeletionTimestamp.IsZero() {
			delete(live, inst.Name)
		} else {
			live[inst.Name] = *inst
		}
		all := make([]skiffv1alpha1.Instance, 0, len(live))
		for _, i := range live {
			all = append(all, i)
		}
		maxLive, minReady = max(maxLive, len(all)), min(minReady, running(all, ""))
		if len(all) > 5 {
			t.Fatalf("%d live instances during the rollout, above replicas 4 + maxSurge 1", len(all))
		}
		if r := running(all, ""); r < 3 {
			t.Fatalf("%d ready instances during the rollout, below replicas 4 - maxUnavailable 1", r)
		}
		if len(all) == 4 && running(all, "registry.local/web:2") == 4 {
			break
		}
	}
	t.Logf("rollout: at most %d live, at least %d ready", maxLive, minReady)
	var st skiffv1alpha1.WorkloadStatus
	var ev map[string][]string
	defer func() {
		if t.Failed() {
			t.Logf("status %+v\nevents %v", st, ev)
		}
	}()
	eventually(t, "rollout complete in status and events", func() bool {
		st = p.get(t, w).Status
		ev = p.events(t, w)
		return st.UpdatedReplicas == 4 && st.CurrentRevision == st.UpdateRevision &&
			meta.IsStatusConditionTrue(st.Conditions, skiffv1alpha1.WorkloadProgressing) &&
			len(ev["RolloutStarted"]) == 1 && len(ev["RolloutComplete"]) == 1 && len(ev["ScalingUp"]) > 0 && len(ev["ScalingDown"]) > 0
	})
}

// TestWorkloadAutoRollback: a rollout whose Instances never become ready
// stalls past progressDeadlineSeconds; with autoRollback the template goes
// back to the revision that was available, and an Event says so.
func TestWorkloadAutoRollback(t *testing.T) {
	p := startPlane(t, 2, controllers.DefaultConfig())
	w := webWorkload("api", 2, "registry.local/api:1")
	w.Spec.AutoRollback = true
	w.Spec.ProgressDeadlineSeconds = ptr.To[int32](3)
	if err := p.admin.Create(p.ctx, w); err != nil {
		t.Fatal(err)
	}
	p.waitRunning(t, w, 2, "registry.local/api:1")
	good := p.get(t, w).Status.UpdateRevision
	eventually(t, "revision recorded as available", func() bool { return p.get(t, w).Status.LastAvailableRevision == good })

	// The bad revision crashes at once, for ever.
	p.update(t, w, func(w *skiffv1alpha1.Workload) {
		c := &w.Spec.Template.Spec.Containers[0]
		c.Image = "registry.local/api:2"
		c.Env = []skiffv1alpha1.EnvVar{{Name: runtime.SimExitCodeEnv, Value: "1"}}
	})
	eventually(t, "rolled back to the available template", func() bool {
		got := p.get(t, w)
		return got.Spec.Template.Spec.Containers[0].Image == "registry.local/api:1" && got.Status.UpdateRevision == good
	})
	ev := p.events(t, w)
	if len(ev["ProgressDeadlineExceeded"]) == 0 || len(ev["RolledBack"]) != 1 || !strings.Contains(ev["RolledBack"][0], "to revision "+good) {
		t.Fatalf("events: %v", ev)
	}
	p.waitRunning(t, w, 2, "registry.local/api:1")
}

// TestWorkloadReplacesFailedInstances: an Instance that ends Failed is
// replaced by a new one.
func TestWorkloadReplacesFailedInstances(t *testing.T) {
	p := startPlane(t, 1, controllers.DefaultConfig())
	w := webWorkload("job", 2, "registry.local/job:1")
	if err := p.admin.Create(p.ctx, w); err != nil {
		t.Fatal(err)
	}
	p.waitRunning(t, w, 2, "")
	victim := p.owned(t, w)[0]
	victim.Status.Phase = skiffv1alpha1.InstanceFailed
	victim.Status.Reason = skiffv1alpha1.ReasonNodeLost
	if err := p.admin.Status().Update(p.ctx, &victim); err != nil {
		t.Fatal(err)
	}
	eventually(t, "failed instance replaced", func() bool {
		insts := p.owned(t, w)
		for _, inst := range insts {
			if inst.Name == victim.Name {
				return false
			}
		}
		return len(insts) == 2 && running(insts, "") == 2
	})
	if ev := p.events(t, w); len(ev["InstanceReplaced"]) == 0 {
		t.Fatalf("no InstanceReplaced event: %v", ev)
	}
}

func resourceQuantity(s string) resource.Quantity { return resource.MustParse(s) }

// TestPlanPreviewAgrees: `skiff plan`'s preview (the same PLAN and
// scheduler functions, run against the live cluster without writing)
// predicts what the controllers then do: the Instances made, the node they
// land on, and the exact no-fit message of one that fits nowhere.
func TestPlanPreviewAgrees(t *testing.T) {
	p := startPlane(t, 1, controllers.DefaultConfig())
	w := webWorkload("small", 2, "registry.local/small:1")
	if err := p.admin.Create(p.ctx, w, client.DryRunAll); err != nil {
		t.Fatal(err)
	}
	preview, err := workload.PreviewPlan(p.ctx, p.admin, w, scheduler.New(scheduler.Spread))
	if err != nil {
		t.Fatal(err)
	}
	if len(preview.Actions) != 2 || preview.Actions[0].Type != workload.Create || preview.Placements[0].Node != "sim-0" || preview.Placements[1].Node != "sim-0" {
		t.Fatalf("preview %+v %+v", preview.Actions, preview.Placements)
	}
	w = webWorkload("small", 2, "registry.local/small:1")
	if err := p.admin.Create(p.ctx, w); err != nil {
		t.Fatal(err)
	}
	p.waitRunning(t, w, 2, "")
	for _, inst := range p.owned(t, w) {
		if inst.Spec.NodeName != preview.Placements[0].Node || inst.Labels[skiffv1alpha1.RevisionLabel] != preview.Actions[0].Revision {
			t.Errorf("instance %s on %q, revision %s; preview said %q, %s", inst.Name, inst.Spec.NodeName,
				inst.Labels[skiffv1alpha1.RevisionLabel], preview.Placements[0].Node, preview.Actions[0].Revision)
		}
	}

	huge := webWorkload("huge", 1, "registry.local/huge:1")
	huge.Spec.Template.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resourceQuantity("1000")
	if err := p.admin.Create(p.ctx, huge, client.DryRunAll); err != nil {
		t.Fatal(err)
	}
	preview, err = workload.PreviewPlan(p.ctx, p.admin, huge, scheduler.New(scheduler.Spread))
	if err != nil {
		t.Fatal(err)
	}
	if len(preview.Placements) != 1 || preview.Placements[0].Node != "" || preview.Placements[0].WhyNot == "" {
		t.Fatalf("preview placements %+v", preview.Placements)
	}
	huge = webWorkload("huge", 1, "registry.local/huge:1")
	huge.Spec.Template.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resourceQuantity("1000")
	if err := p.admin.Create(p.ctx, huge); err != nil {
		t.Fatal(err)
	}
	var msg string
	eventually(t, "the huge instance unschedulable", func() bool {
		insts := p.owned(t, huge)
		if len(insts) != 1 {
			return false
		}
		cond := meta.FindStatusCondition(insts[0].Status.Conditions, skiffv1alpha1.InstanceScheduled)
		if cond == nil || cond.Status != metav1.ConditionFalse {
			return false
		}
		msg = cond.Message
		return true
	})
	if msg != preview.Placements[0].WhyNot {
		t.Errorf("scheduler says %q; preview said %q", msg, preview.Placements[0].WhyNot)
	}
}

// TestNodeLostReplacement: a node whose agent stops renewing its Lease is
// given up after the grace period; its Instance is marked Failed/NodeLost
// once its toleration runs out and replaced on a live node. When the agent
// comes back, the taint goes and the replaced Instance is cleaned up: no
// duplicates are left.
func TestNodeLostReplacement(t *testing.T) {
	cfg := controllers.DefaultConfig()
	cfg.NodeGracePeriod = 2 * time.Second
	p := startPlane(t, 1, cfg)

	acfg := nodeagent.DefaultConfig()
	acfg.Server, acfg.JoinToken, acfg.DataDir, acfg.NodeName = p.s.URL, p.s.JoinTokenFile, t.TempDir(), "lonely"
	acfg.LeaseInterval, acfg.Runtime, acfg.Listen = 500*time.Millisecond, "sim", "127.0.0.1:0"
	runLonely := func() (stop func()) {
		a, err := nodeagent.New(acfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(p.ctx)
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx) }()
		return func() { cancel(); <-done }
	}
	stop := runLonely()
	defer func() { stop() }()
	// Both nodes Ready before the Workload: else both Instances may land
	// on the one that is.
	eventually(t, "node lonely Ready", func() bool {
		var n skiffv1alpha1.Node
		return p.admin.Get(p.ctx, client.ObjectKey{Name: "lonely"}, &n) == nil && n.Status.Phase == skiffv1alpha1.NodeReady
	})

	w := webWorkload("svc", 2, "registry.local/svc:1")
	w.Spec.Template.Spec.Tolerations = []skiffv1alpha1.Toleration{{
		Key: skiffv1alpha1.TaintUnreachable, Operator: skiffv1alpha1.TolerationOpExists,
		Effect: skiffv1alpha1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](1),
	}}
	if err := p.admin.Create(p.ctx, w); err != nil {
		t.Fatal(err)
	}
	var lost string
	eventually(t, "one running instance on each node", func() bool {
		insts := p.owned(t, w)
		lost = ""
		for _, inst := range insts {
			if inst.Spec.NodeName == "lonely" {
				lost = inst.Name
			}
		}
		return len(insts) == 2 && running(insts, "") == 2 && lost != ""
	})

	stop()
	eventually(t, "the lost instance replaced on the live node", func() bool {
		var inst skiffv1alpha1.Instance
		err := p.admin.Get(p.ctx, client.ObjectKey{Namespace: "default", Name: lost}, &inst)
		marked := err == nil && inst.Status.Phase == skiffv1alpha1.InstanceFailed && inst.Status.Reason == skiffv1alpha1.ReasonNodeLost
		insts := p.owned(t, w)
		onLive := 0
		for _, i := range insts {
			if i.Spec.NodeName == "sim-0" && i.Status.Phase == skiffv1alpha1.InstanceRunning {
				onLive++
			}
		}
		return (marked || err != nil) && len(insts) == 2 && onLive == 2
	})
	var node skiffv1alpha1.Node
	if err := p.admin.Get(p.ctx, client.ObjectKey{Name: "lonely"}, &node); err != nil {
		t.Fatal(err)
	}
	if node.Status.Phase == skiffv1alpha1.NodeReady || !hasTaint(&node, skiffv1alpha1.TaintUnreachable) {
		t.Fatalf("lost node: phase %s, taints %+v", node.Status.Phase, node.Spec.Taints)
	}

	stop = runLonely()
	eventually(t, "the node back without its taint, the replaced instance gone", func() bool {
		var node skiffv1alpha1.Node
		if p.admin.Get(p.ctx, client.ObjectKey{Name: "lonely"}, &node) != nil {
			return false
		}
		var inst skiffv1alpha1.Instance
		gone := apierrors.IsNotFound(p.admin.Get(p.ctx, client.ObjectKey{Namespace: "default", Name: lost}, &inst))
		return node.Status.Phase == skiffv1alpha1.NodeReady && !hasTaint(&node, skiffv1alpha1.TaintUnreachable) && gone
	})
	if insts := p.owned(t, w); len(insts) != 2 || running(insts, "") != 2 {
		t.Fatalf("after the node came back: %d live instances, %d running", len(insts), running(insts, ""))
	}
}

func hasTaint(n *skiffv1alpha1.Node, key string) bool {
	for _, t := range n.Spec.Taints {
		if t.Key == key {
			return true
		}
	}
	return false
}
