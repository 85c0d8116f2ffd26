package metrics

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

func TestCluster(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := skiffv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	objs := []client.Object{
		&skiffv1alpha1.Workload{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"}},
		&skiffv1alpha1.Workload{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "other"}},
		instance("web-1", skiffv1alpha1.InstanceRunning),
		instance("web-2", skiffv1alpha1.InstanceRunning),
		instance("web-3", skiffv1alpha1.InstancePending),
		instance("web-4", ""), // not yet given a phase: pending
		instance("job-1", skiffv1alpha1.InstanceFailed),
		node("n1", metav1.ConditionTrue, "4", "3500m", "8Gi"),
		node("n2", metav1.ConditionFalse, "2", "1500m", "4Gi"),
		node("n3", metav1.ConditionTrue, "", "", ""),                   // registered, no resources reported yet
		&skiffv1alpha1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n4"}}, // no conditions at all: not ready
	}
	c := NewCluster(fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build())
	want := `
# HELP skiff_cluster_allocatable_cpu_cores Sum of the Nodes' allocatable cpu, in cores.
# TYPE skiff_cluster_allocatable_cpu_cores gauge
skiff_cluster_allocatable_cpu_cores 5
# HELP skiff_cluster_allocatable_memory_bytes Sum of the Nodes' allocatable memory, in bytes.
# TYPE skiff_cluster_allocatable_memory_bytes gauge
skiff_cluster_allocatable_memory_bytes 1.2884901888e+10
# HELP skiff_cluster_capacity_cpu_cores Sum of the Nodes' cpu capacity, in cores.
# TYPE skiff_cluster_capacity_cpu_cores gauge
skiff_cluster_capacity_cpu_cores 6
# HELP skiff_instances Instances in the cluster, by phase.
# TYPE skiff_instances gauge
skiff_instances{phase="Failed"} 1
skiff_instances{phase="Pending"} 2
skiff_instances{phase="Running"} 2
skiff_instances{phase="Succeeded"} 0
skiff_instances{phase="Unknown"} 0
# HELP skiff_nodes Nodes in the cluster.
# TYPE skiff_nodes gauge
skiff_nodes 4
# HELP skiff_nodes_ready Nodes whose Ready condition is True.
# TYPE skiff_nodes_ready gauge
skiff_nodes_ready 2
# HELP skiff_workloads Workloads in the cluster.
# TYPE skiff_workloads gauge
skiff_workloads 2
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

// TestClusterEmpty: an empty cluster reports every gauge, and every phase,
// at zero.
func TestClusterEmpty(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := skiffv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := NewCluster(fake.NewClientBuilder().WithScheme(scheme).Build())
	if n := testutil.CollectAndCount(c); n != 6+len(InstancePhases()) {
		t.Errorf("%d series, want %d", n, 6+len(InstancePhases()))
	}
	if n := testutil.CollectAndCount(c, "skiff_instances"); n != 5 {
		t.Errorf("%d skiff_instances series, want one per phase", n)
	}
}

// TestClusterListError: a reader that fails fails the scrape instead of
// reporting zeros.
func TestClusterListError(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCluster(failingReader{}))
	_, err := reg.Gather()
	var errs prometheus.MultiError
	if !errors.As(err, &errs) || len(errs) != 6+1 {
		t.Fatalf("gather error %v: want one error per gauge", err)
	}
	for _, err := range errs {
		if !errors.Is(err, errNotSynced) {
			t.Errorf("gather error %v, want %v", err, errNotSynced)
		}
	}
}

var errNotSynced = errors.New("cache not synced")

type failingReader struct{ client.Reader }

func (failingReader) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return errNotSynced
}

func instance(name string, phase skiffv1alpha1.InstancePhase) *skiffv1alpha1.Instance {
	return &skiffv1alpha1.Instance{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Status:     skiffv1alpha1.InstanceStatus{Phase: phase},
	}
}

func node(name string, ready metav1.ConditionStatus, capacityCPU, allocatableCPU, allocatableMemory string) *skiffv1alpha1.Node {
	n := &skiffv1alpha1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	n.Status.Conditions = []metav1.Condition{{Type: skiffv1alpha1.NodeConditionReady, Status: ready}}
	n.Status.Capacity, n.Status.Allocatable = corev1.ResourceList{}, corev1.ResourceList{}
	if capacityCPU != "" {
		n.Status.Capacity[corev1.ResourceCPU] = resource.MustParse(capacityCPU)
	}
	if allocatableCPU != "" {
		n.Status.Allocatable[corev1.ResourceCPU] = resource.MustParse(allocatableCPU)
	}
	if allocatableMemory != "" {
		n.Status.Allocatable[corev1.ResourceMemory] = resource.MustParse(allocatableMemory)
	}
	return n
}
