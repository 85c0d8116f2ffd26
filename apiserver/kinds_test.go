package apiserver

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// TestInstanceStatusColumn: kubectl's STATUS says why an Instance is not
// running, as it does for a Pod.
func TestInstanceStatusColumn(t *testing.T) {
	waiting := func(reason string) skiffv1alpha1.ContainerStatus {
		return skiffv1alpha1.ContainerStatus{State: skiffv1alpha1.ContainerState{Waiting: &skiffv1alpha1.ContainerStateWaiting{Reason: reason}}}
	}
	ended := func(reason string) skiffv1alpha1.ContainerStatus {
		return skiffv1alpha1.ContainerStatus{State: skiffv1alpha1.ContainerState{Terminated: &skiffv1alpha1.ContainerStateTerminated{Reason: reason}}}
	}
	running := skiffv1alpha1.ContainerStatus{State: skiffv1alpha1.ContainerState{Running: &skiffv1alpha1.ContainerStateRunning{}}}
	now := metav1.Now()
	twoInits := func(inits ...skiffv1alpha1.ContainerStatus) skiffv1alpha1.Instance {
		return skiffv1alpha1.Instance{
			Spec:   skiffv1alpha1.InstanceSpec{InstanceTemplateSpec: skiffv1alpha1.InstanceTemplateSpec{InitContainers: make([]skiffv1alpha1.Container, 2)}},
			Status: skiffv1alpha1.InstanceStatus{Phase: skiffv1alpha1.InstancePending, InitContainerStatuses: inits, ContainerStatuses: []skiffv1alpha1.ContainerStatus{waiting("PodInitializing")}},
		}
	}
	completed := skiffv1alpha1.ContainerStatus{State: skiffv1alpha1.ContainerState{Terminated: &skiffv1alpha1.ContainerStateTerminated{Reason: "Completed"}}}
	for _, tc := range []struct {
		name   string
		inst   skiffv1alpha1.Instance
		status string
	}{
		{"new", skiffv1alpha1.Instance{}, "<none>"},
		{"pending", skiffv1alpha1.Instance{Status: skiffv1alpha1.InstanceStatus{Phase: skiffv1alpha1.InstancePending}}, "Pending"},
		{"running", skiffv1alpha1.Instance{Status: skiffv1alpha1.InstanceStatus{Phase: skiffv1alpha1.InstanceRunning, ContainerStatuses: []skiffv1alpha1.ContainerStatus{running}}}, "Running"},
		{"wrong image", skiffv1alpha1.Instance{Status: skiffv1alpha1.InstanceStatus{Phase: skiffv1alpha1.InstancePending, ContainerStatuses: []skiffv1alpha1.ContainerStatus{running, waiting("ImagePullBackOff")}}}, "ImagePullBackOff"},
		{"crashing", skiffv1alpha1.Instance{Status: skiffv1alpha1.InstanceStatus{Phase: skiffv1alpha1.InstanceRunning, ContainerStatuses: []skiffv1alpha1.ContainerStatus{waiting("CrashLoopBackOff")}}}, "CrashLoopBackOff"},
		{"failed", skiffv1alpha1.Instance{Status: skiffv1alpha1.InstanceStatus{Phase: skiffv1alpha1.InstanceFailed, ContainerStatuses: []skiffv1alpha1.ContainerStatus{ended("Error")}}}, "Error"},
		{"done", skiffv1alpha1.Instance{Status: skiffv1alpha1.InstanceStatus{Phase: skiffv1alpha1.InstanceSucceeded, ContainerStatuses: []skiffv1alpha1.ContainerStatus{ended("Completed")}}}, "Completed"},
		{"one of two done", skiffv1alpha1.Instance{Status: skiffv1alpha1.InstanceStatus{Phase: skiffv1alpha1.InstanceRunning, ContainerStatuses: []skiffv1alpha1.ContainerStatus{running, ended("Completed")}}}, "Running"},
		{"node lost", skiffv1alpha1.Instance{Status: skiffv1alpha1.InstanceStatus{Phase: skiffv1alpha1.InstanceFailed, Reason: "NodeLost", ContainerStatuses: []skiffv1alpha1.ContainerStatus{running}}}, "NodeLost"},
		{"first init container runs", twoInits(running, waiting("PodInitializing")), "Init:0/2"},
		{"second init container runs", twoInits(completed, running), "Init:1/2"},
		{"init container crashing", twoInits(completed, waiting("CrashLoopBackOff")), "Init:CrashLoopBackOff"},
		{"init container failed", twoInits(skiffv1alpha1.ContainerStatus{State: skiffv1alpha1.ContainerState{Terminated: &skiffv1alpha1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}}}), "Init:Error"},
		{"init done, containers starting", twoInits(completed, completed), "PodInitializing"},
		{"being deleted", skiffv1alpha1.Instance{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: &now}, Status: skiffv1alpha1.InstanceStatus{Phase: skiffv1alpha1.InstanceRunning, ContainerStatuses: []skiffv1alpha1.ContainerStatus{running}}}, "Terminating"},
	} {
		if got := instanceStatus(&tc.inst); got != tc.status {
			t.Errorf("%s: STATUS %q, want %q", tc.name, got, tc.status)
		}
	}
}

// TestKindTableIsConsistent checks what the registry trusts the table for:
// one namespaces kind, field selector values for exactly the declared
// labels, and subresources only on kinds that can hold them.
func TestKindTableIsConsistent(t *testing.T) {
	namespaces := 0
	for _, k := range Kinds() {
		t.Run(k.Plural, func(t *testing.T) {
			if k.Namespaces {
				namespaces++
			}
			if k.KeepsNamespace && !k.Namespaced {
				t.Errorf("KeepsNamespace on a cluster-scoped kind")
			}
			if (k.Fields == nil) != (len(k.FieldLabels) == 0) {
				t.Fatalf("Fields and FieldLabels must come together")
			}
			if k.Fields == nil {
				return
			}
			got := k.Fields(k.New())
			if len(got) != len(k.FieldLabels) {
				t.Errorf("Fields gives %d values, FieldLabels declares %d", len(got), len(k.FieldLabels))
			}
			for _, l := range k.FieldLabels {
				if _, ok := got[l]; !ok {
					t.Errorf("field label %q has no value in Fields", l)
				}
			}
		})
	}
	if namespaces != 1 {
		t.Errorf("%d kinds are the namespaces; want 1", namespaces)
	}
}
