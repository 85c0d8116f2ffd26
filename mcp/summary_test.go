package mcp

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

func TestSummarizeInstance(t *testing.T) {
	now := time.Now()
	base := func() *skiffv1alpha1.Instance {
		return &skiffv1alpha1.Instance{
			ObjectMeta: metav1.ObjectMeta{Name: "i", Namespace: "ns", CreationTimestamp: metav1.NewTime(now.Add(-90 * time.Second)),
				OwnerReferences: []metav1.OwnerReference{{Name: "web", Controller: ptr(true)}}},
			Spec: skiffv1alpha1.InstanceSpec{InstanceTemplateSpec: skiffv1alpha1.InstanceTemplateSpec{Containers: []skiffv1alpha1.Container{{Name: "a"}, {Name: "b"}}}},
		}
	}
	cases := []struct {
		name   string
		edit   func(*skiffv1alpha1.Instance)
		phase  string
		ready  string
		reason string
	}{
		{"new", func(*skiffv1alpha1.Instance) {}, "Pending", "0/2", ""},
		{"unschedulable", func(i *skiffv1alpha1.Instance) {
			i.Status.Conditions = []metav1.Condition{{Type: skiffv1alpha1.InstanceScheduled, Status: metav1.ConditionFalse, Reason: "Unschedulable", Message: "0/3 nodes are available: 3 insufficient cpu."}}
		}, "Pending", "0/2", "Unschedulable: 0/3 nodes are available: 3 insufficient cpu."},
		{"crash looping", func(i *skiffv1alpha1.Instance) {
			i.Status.Phase = skiffv1alpha1.InstanceRunning
			i.Status.ContainerStatuses = []skiffv1alpha1.ContainerStatus{
				{Name: "a", Ready: true, RestartCount: 1},
				{Name: "b", RestartCount: 4, State: skiffv1alpha1.ContainerState{Waiting: &skiffv1alpha1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: strings.Repeat("x", 1000)}}},
			}
		}, "Running", "1/2", "CrashLoopBackOff: " + strings.Repeat("x", maxReasonBytes) + " …[cut]"},
		{"terminating", func(i *skiffv1alpha1.Instance) {
			i.Status.Phase = skiffv1alpha1.InstanceRunning
			i.DeletionTimestamp = &metav1.Time{Time: now}
		}, "Terminating", "0/2", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			inst := base()
			tc.edit(inst)
			s := summarizeInstance(inst, now)
			if s.Phase != tc.phase || s.Ready != tc.ready || s.Reason != tc.reason || s.Workload != "web" || s.Age != "90s" {
				t.Fatalf("summary %+v, want phase %s ready %s reason %q", s, tc.phase, tc.ready, tc.reason)
			}
		})
	}
}

func TestWorkloadHealth(t *testing.T) {
	w := &skiffv1alpha1.Workload{ObjectMeta: metav1.ObjectMeta{Generation: 2}, Spec: skiffv1alpha1.WorkloadSpec{Replicas: ptr(int32(3))}}
	health := func() string { return summarizeWorkload(w, time.Now()).Health }
	if h := health(); !strings.HasPrefix(h, "Progressing: not yet observed") {
		t.Fatalf("unobserved: %s", h)
	}
	w.Status = skiffv1alpha1.WorkloadStatus{ObservedGeneration: 2, Replicas: 3, AvailableReplicas: 3, UpdatedReplicas: 3}
	if h := health(); h != "Healthy" {
		t.Fatalf("all available: %s", h)
	}
	w.Status.AvailableReplicas = 1
	if h := health(); h != "Progressing: 1 of 3 available, 3 up to date" {
		t.Fatalf("one available: %s", h)
	}
	w.Status.Conditions = []metav1.Condition{{Type: skiffv1alpha1.WorkloadProgressing, Status: metav1.ConditionFalse, Reason: "ProgressDeadlineExceeded", Message: "stalled"}}
	if h := health(); h != "Degraded: ProgressDeadlineExceeded: stalled" {
		t.Fatalf("stalled: %s", h)
	}
}

func TestNodeRoom(t *testing.T) {
	node := &skiffv1alpha1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Status: skiffv1alpha1.NodeStatus{Allocatable: corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("4Gi")}}}
	inst := func(node, cpu, mem string, phase skiffv1alpha1.InstancePhase) skiffv1alpha1.Instance {
		return skiffv1alpha1.Instance{Spec: skiffv1alpha1.InstanceSpec{NodeName: node, InstanceTemplateSpec: skiffv1alpha1.InstanceTemplateSpec{Containers: []skiffv1alpha1.Container{{
			Resources: skiffv1alpha1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)}}}}}},
			Status: skiffv1alpha1.InstanceStatus{Phase: phase}}
	}
	usage := usageByNode([]skiffv1alpha1.Instance{
		inst("n1", "500m", "1Gi", skiffv1alpha1.InstanceRunning),
		inst("n1", "2", "1Gi", skiffv1alpha1.InstanceSucceeded), // finished: holds nothing
		inst("n2", "1", "1Gi", skiffv1alpha1.InstanceRunning),
		inst("", "1", "1Gi", skiffv1alpha1.InstancePending),
	})
	s := summarizeNode(node, usage["n1"], time.Now())
	want := Room{CPUAllocatableMilli: 2000, CPURequestedMilli: 500, CPUFreeMilli: 1500, MemoryAllocatableMi: 4096, MemoryRequestedMi: 1024, MemoryFreeMi: 3072}
	if s.Resources != want || s.Instances != 1 {
		t.Fatalf("room %+v (%d instances), want %+v (1)", s.Resources, s.Instances, want)
	}
}

func TestTruncateKeepsRunes(t *testing.T) {
	s := strings.Repeat("é", 100)
	for n := 0; n < 50; n++ {
		out := truncate(s, n)
		if !utf8.ValidString(out) || len(out) > n+len(" …[cut]") {
			t.Fatalf("truncate(%d) = %q", n, out)
		}
	}
	if truncate("short", 10) != "short" {
		t.Fatal("a short string was cut")
	}
}

func TestUpdatePatchNamesOnlyWhatIsGiven(t *testing.T) {
	w := &skiffv1alpha1.Workload{ObjectMeta: metav1.ObjectMeta{Name: "web"}}
	w.Spec.Template.Spec.Containers = []skiffv1alpha1.Container{{Name: "main"}}
	data, err := updatePatch(w, UpdateWorkloadIn{Name: "web", Env: map[string]string{"B": "2", "A": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"spec":{"template":{"spec":{"containers":[{"env":[{"name":"A","value":"1"},{"name":"B","value":"2"}],"name":"main"}]}}}}`
	if string(data) != want {
		t.Fatalf("patch %s, want %s", data, want)
	}
	if _, err := updatePatch(w, UpdateWorkloadIn{Name: "web"}); err == nil || !strings.Contains(err.Error(), "nothing to change") {
		t.Fatalf("an empty update: %v", err)
	}
	w.Spec.Template.Spec.Containers = append(w.Spec.Template.Spec.Containers, skiffv1alpha1.Container{Name: "side"})
	if _, err := updatePatch(w, UpdateWorkloadIn{Name: "web", Image: "x"}); err == nil || !strings.Contains(err.Error(), "argument container") {
		t.Fatalf("an image for one of two containers without naming it: %v", err)
	}
}

func TestWorkloadArgsApplyObject(t *testing.T) {
	u, err := WorkloadArgs{Name: "web", Image: "nginx", Replicas: ptr(int32(2)), CPUCores: 0.5, MemoryMB: 128,
		Ports: []PortArg{{ContainerPort: 80, HostPort: 8080}}}.applyObject("team")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(u.Object)
	for _, want := range []string{`"replicas":2`, `"cpu":"500m"`, `"memory":"128Mi"`, `"hostPort":8080`, `"protocol":"TCP"`, `"labels":{"app":"web"}`, `"namespace":"team"`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("apply object %s lacks %s", data, want)
		}
	}
	if _, err := (WorkloadArgs{Name: "web"}).applyObject("ns"); err == nil || !strings.Contains(err.Error(), "argument image") {
		t.Fatalf("no image: %v", err)
	}
}

func TestSortEventsWarningsFirstThenNewest(t *testing.T) {
	at := func(min int) metav1.Time { return metav1.NewTime(time.Date(2026, 1, 1, 0, min, 0, 0, time.UTC)) }
	events := []corev1.Event{
		{Reason: "old-normal", Type: corev1.EventTypeNormal, LastTimestamp: at(1)},
		{Reason: "old-warning", Type: corev1.EventTypeWarning, LastTimestamp: at(2)},
		{Reason: "new-normal", Type: corev1.EventTypeNormal, LastTimestamp: at(9)},
		{Reason: "new-warning", Type: corev1.EventTypeWarning, EventTime: metav1.NewMicroTime(at(8).Time)},
	}
	sortEvents(events)
	var got []string
	for _, e := range events {
		got = append(got, e.Reason)
	}
	if want := "new-warning old-warning new-normal old-normal"; strings.Join(got, " ") != want {
		t.Fatalf("order %v, want %s", got, want)
	}
}
