package metrics

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// listTimeout bounds one scrape's reads: a cache that has not synced
// blocks List, and a scrape must not hang.
const listTimeout = 5 * time.Second

// InstancePhases are the values of skiff_instances' phase label; every one
// is reported, at 0 when no Instance is in it.
func InstancePhases() []skiffv1alpha1.InstancePhase {
	return []skiffv1alpha1.InstancePhase{
		skiffv1alpha1.InstancePending, skiffv1alpha1.InstanceRunning, skiffv1alpha1.InstanceSucceeded,
		skiffv1alpha1.InstanceFailed, skiffv1alpha1.InstanceUnknown,
	}
}

// Cluster is a prometheus.Collector of the cluster gauges: counts of
// Workloads, Instances by phase and Nodes, and the Nodes' summed cpu and
// memory. It lists from its reader at scrape time, so the gauges are never
// stale and nothing has to keep them up to date. A list that fails makes
// its gauges invalid metrics, which fails the scrape rather than report a
// wrong zero.
type Cluster struct {
	reader client.Reader

	workloads, instances, nodes, nodesReady        *prometheus.Desc
	capacityCPU, allocatableCPU, allocatableMemory *prometheus.Desc
}

var _ prometheus.Collector = (*Cluster)(nil)

// NewCluster returns the collector over reader, normally the manager's
// cache (mgr.GetCache()). Register it on the controllers' registry.
func NewCluster(reader client.Reader) *Cluster {
	return &Cluster{
		reader:     reader,
		workloads:  prometheus.NewDesc("skiff_workloads", "Workloads in the cluster.", nil, nil),
		instances:  prometheus.NewDesc("skiff_instances", "Instances in the cluster, by phase.", []string{"phase"}, nil),
		nodes:      prometheus.NewDesc("skiff_nodes", "Nodes in the cluster.", nil, nil),
		nodesReady: prometheus.NewDesc("skiff_nodes_ready", "Nodes whose Ready condition is True.", nil, nil),
		capacityCPU: prometheus.NewDesc("skiff_cluster_capacity_cpu_cores",
			"Sum of the Nodes' cpu capacity, in cores.", nil, nil),
		allocatableCPU: prometheus.NewDesc("skiff_cluster_allocatable_cpu_cores",
			"Sum of the Nodes' allocatable cpu, in cores.", nil, nil),
		allocatableMemory: prometheus.NewDesc("skiff_cluster_allocatable_memory_bytes",
			"Sum of the Nodes' allocatable memory, in bytes.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Cluster) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.workloads, c.instances, c.nodes, c.nodesReady,
		c.capacityCPU, c.allocatableCPU, c.allocatableMemory} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: it lists and counts.
func (c *Cluster) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), listTimeout)
	defer cancel()
	c.collectWorkloads(ctx, ch)
	c.collectInstances(ctx, ch)
	c.collectNodes(ctx, ch)
}

func (c *Cluster) collectWorkloads(ctx context.Context, ch chan<- prometheus.Metric) {
	var list skiffv1alpha1.WorkloadList
	if err := c.reader.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		ch <- prometheus.NewInvalidMetric(c.workloads, fmt.Errorf("list workloads: %w", err))
		return
	}
	ch <- prometheus.MustNewConstMetric(c.workloads, prometheus.GaugeValue, float64(len(list.Items)))
}

func (c *Cluster) collectInstances(ctx context.Context, ch chan<- prometheus.Metric) {
	var list skiffv1alpha1.InstanceList
	if err := c.reader.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		ch <- prometheus.NewInvalidMetric(c.instances, fmt.Errorf("list instances: %w", err))
		return
	}
	for phase, n := range countPhases(list.Items) {
		ch <- prometheus.MustNewConstMetric(c.instances, prometheus.GaugeValue, float64(n), string(phase))
	}
}

func (c *Cluster) collectNodes(ctx context.Context, ch chan<- prometheus.Metric) {
	var list skiffv1alpha1.NodeList
	if err := c.reader.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		err = fmt.Errorf("list nodes: %w", err)
		for _, d := range []*prometheus.Desc{c.nodes, c.nodesReady, c.capacityCPU, c.allocatableCPU, c.allocatableMemory} {
			ch <- prometheus.NewInvalidMetric(d, err)
		}
		return
	}
	s := sumNodes(list.Items)
	ch <- prometheus.MustNewConstMetric(c.nodes, prometheus.GaugeValue, float64(len(list.Items)))
	ch <- prometheus.MustNewConstMetric(c.nodesReady, prometheus.GaugeValue, float64(s.ready))
	ch <- prometheus.MustNewConstMetric(c.capacityCPU, prometheus.GaugeValue, s.capacityCPU)
	ch <- prometheus.MustNewConstMetric(c.allocatableCPU, prometheus.GaugeValue, s.allocatableCPU)
	ch <- prometheus.MustNewConstMetric(c.allocatableMemory, prometheus.GaugeValue, s.allocatableMemory)
}

// countPhases counts Instances by phase, every phase present. An Instance
// with no phase yet (the apiserver sets Pending on create) counts as
// Pending.
func countPhases(items []skiffv1alpha1.Instance) map[skiffv1alpha1.InstancePhase]int {
	counts := map[skiffv1alpha1.InstancePhase]int{}
	for _, p := range InstancePhases() {
		counts[p] = 0
	}
	for i := range items {
		phase := items[i].Status.Phase
		if phase == "" {
			phase = skiffv1alpha1.InstancePending
		}
		counts[phase]++
	}
	return counts
}

// nodeSums are the node gauges but the count.
type nodeSums struct {
	ready                                          int
	capacityCPU, allocatableCPU, allocatableMemory float64
}

func sumNodes(items []skiffv1alpha1.Node) nodeSums {
	var s nodeSums
	for i := range items {
		st := &items[i].Status
		if meta.IsStatusConditionTrue(st.Conditions, skiffv1alpha1.NodeConditionReady) {
			s.ready++
		}
		s.capacityCPU += cores(st.Capacity)
		s.allocatableCPU += cores(st.Allocatable)
		if q, ok := st.Allocatable[corev1.ResourceMemory]; ok {
			s.allocatableMemory += q.AsApproximateFloat64()
		}
	}
	return s
}

// cores is the cpu in rl, in cores (0 when absent).
func cores(rl corev1.ResourceList) float64 {
	q, ok := rl[corev1.ResourceCPU]
	if !ok {
		return 0
	}
	return float64(q.MilliValue()) / 1000
}
