package controllers_test

import (
	"path/filepath"
	goruntime "runtime"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/apiserver/apiservertest"
	"skiff.dev/skiff/controllers"
	"skiff.dev/skiff/nodeagent"
)

// startZone adds a fleet of n simulated nodes PREFIX-0..n-1 in zone.
func (p *plane) startZone(t *testing.T, prefix, zone string, n int) {
	t.Helper()
	cfg := nodeagent.DefaultConfig()
	cfg.Server, cfg.JoinToken, cfg.DataDir, cfg.NodeName = p.s.URL, p.s.JoinTokenFile, filepath.Join(t.TempDir(), prefix), prefix
	cfg.LeaseInterval, cfg.Runtime, cfg.Listen = time.Second, "sim", "127.0.0.1:0"
	cfg.Zone, cfg.Region = zone, "r1"
	fleet, err := nodeagent.NewFleet(cfg, n, p.s.Admin)
	if err != nil {
		t.Fatal(err)
	}
	apiservertest.Run(t, p.ctx, fleet.Run)
}

// antiAffine is a Workload whose replicas may not share a domain of key.
func antiAffine(name string, replicas int32, key string) *skiffv1alpha1.Workload {
	w := webWorkload(name, replicas, "nginx:1")
	w.Spec.Template.Spec.Affinity = &skiffv1alpha1.Affinity{InstanceAntiAffinity: &skiffv1alpha1.InstanceAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: []skiffv1alpha1.InstanceAffinityTerm{{
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}, TopologyKey: key,
		}},
	}}
	return w
}

// TestWellKnownNodeLabels: agents register their Nodes with the labels a
// kubelet sets, so that anti-affinity written for Kubernetes (one replica
// per host, one per zone) places replicas as it would there.
func TestWellKnownNodeLabels(t *testing.T) {
	p := startPlane(t, 0, controllers.DefaultConfig())
	p.startZone(t, "a", "z1", 2)
	p.startZone(t, "b", "z2", 1)
	apiservertest.WaitReadyNodes(t, p.admin, 3)

	var nodes skiffv1alpha1.NodeList
	if err := p.admin.List(p.ctx, &nodes); err != nil {
		t.Fatal(err)
	}
	zoneOf := map[string]string{}
	for _, n := range nodes.Items {
		want := map[string]string{
			corev1.LabelHostname: n.Name, corev1.LabelOSStable: goruntime.GOOS, corev1.LabelArchStable: goruntime.GOARCH,
			corev1.LabelTopologyZone: map[string]string{"a": "z1", "b": "z2"}[n.Name[:1]], corev1.LabelTopologyRegion: "r1",
		}
		for k, v := range want {
			if n.Labels[k] != v {
				t.Errorf("node %s: label %s=%q, want %q", n.Name, k, n.Labels[k], v)
			}
		}
		zoneOf[n.Name] = n.Labels[corev1.LabelTopologyZone]
	}

	perHost := antiAffine("per-host", 3, corev1.LabelHostname)
	perZone := antiAffine("per-zone", 2, corev1.LabelTopologyZone)
	for _, w := range []*skiffv1alpha1.Workload{perHost, perZone} {
		if err := p.admin.Create(p.ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	p.waitRunning(t, perHost, 3, "")
	p.waitRunning(t, perZone, 2, "")
	distinct := func(w *skiffv1alpha1.Workload, domain func(node string) string) {
		seen := map[string]string{}
		for _, inst := range p.owned(t, w) {
			d := domain(inst.Spec.NodeName)
			if other, ok := seen[d]; ok {
				t.Errorf("%s: %s and %s share %q", w.Name, other, inst.Name, d)
			}
			seen[d] = inst.Name
		}
	}
	distinct(perHost, func(node string) string { return node })
	distinct(perZone, func(node string) string { return zoneOf[node] })

	// A fourth replica per host has no host left: it stays unscheduled.
	p.update(t, perHost, func(w *skiffv1alpha1.Workload) { w.Spec.Replicas = ptr.To[int32](4) })
	eventually(t, "a fourth per-host replica, unschedulable", func() bool {
		insts := p.owned(t, perHost)
		unbound := 0
		for _, inst := range insts {
			c := meta.FindStatusCondition(inst.Status.Conditions, skiffv1alpha1.InstanceScheduled)
			if inst.Spec.NodeName == "" && c != nil && c.Status == metav1.ConditionFalse {
				unbound++
			}
		}
		return len(insts) == 4 && unbound == 1
	})
	if got := running(p.owned(t, perHost), ""); got != 3 {
		t.Errorf("per-host: %d running, want 3", got)
	}
}
