package nodeagent

import (
	"context"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/klog/v2"

	"skiff.dev/skiff/nodeagent/bundle"
	"skiff.dev/skiff/nodeagent/runtime"
	"skiff.dev/skiff/nodeagent/usage"
)

// usageCollector exports what the node and its running containers use,
// read from /proc and the containers' cgroups at scrape time: the
// kubelet's resource metrics, which `skiff top` shows. The CPU counters
// carry the time they were read, so that a rate over two scrapes divides
// by the time between the readings, not between the requests.
type usageCollector struct {
	rt      runtime.Runtime
	cgroups usage.Cgroups
	procDir string

	cpu, memory, pids, nodeCPU, nodeMemory *prometheus.Desc
}

var _ prometheus.Collector = (*usageCollector)(nil)

func newUsageCollector(rt runtime.Runtime, cgroups usage.Cgroups, procDir string) *usageCollector {
	labels := []string{"namespace", "instance", "container"}
	return &usageCollector{
		rt: rt, cgroups: cgroups, procDir: procDir,
		cpu:        prometheus.NewDesc("skiff_container_cpu_usage_seconds_total", "CPU time a running container used, all CPUs together.", labels, nil),
		memory:     prometheus.NewDesc("skiff_container_memory_working_set_bytes", "A running container's memory in use less inactive file cache: what its memory limit is enforced against.", labels, nil),
		pids:       prometheus.NewDesc("skiff_container_pids", "Processes and threads in a running container.", labels, nil),
		nodeCPU:    prometheus.NewDesc("skiff_node_cpu_usage_seconds_total", "CPU time the node spent outside the idle task, all CPUs together.", nil, nil),
		nodeMemory: prometheus.NewDesc("skiff_node_memory_working_set_bytes", "The node's memory in use less inactive file cache.", nil, nil),
	}
}

func (c *usageCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.cpu, c.memory, c.pids, c.nodeCPU, c.nodeMemory} {
		ch <- d
	}
}

func (c *usageCollector) Collect(ch chan<- prometheus.Metric) {
	if n, err := usage.ReadNode(c.procDir); err == nil {
		ch <- prometheus.NewMetricWithTimestamp(time.Now(), prometheus.MustNewConstMetric(c.nodeCPU, prometheus.CounterValue, n.CPU.Seconds()))
		ch <- prometheus.MustNewConstMetric(c.nodeMemory, prometheus.GaugeValue, float64(n.WorkingSet))
	} else {
		ch <- prometheus.NewInvalidMetric(c.nodeCPU, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	list, err := c.rt.List(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.cpu, err)
		return
	}
	for _, st := range list {
		namespace, instance, ok := strings.Cut(st.Labels[labelInstance], "/")
		if st.State != runtime.Running || !ok {
			continue
		}
		u, err := c.cgroups.Container(bundle.CgroupsPath("", st.ID))
		if err != nil {
			// Exited since the list, or not the agent's to read.
			klog.V(4).InfoS("container usage", "container", st.ID, "err", err)
			continue
		}
		labels := []string{namespace, instance, st.Labels[labelContainer]}
		ch <- prometheus.NewMetricWithTimestamp(time.Now(), prometheus.MustNewConstMetric(c.cpu, prometheus.CounterValue, u.CPU.Seconds(), labels...))
		ch <- prometheus.MustNewConstMetric(c.memory, prometheus.GaugeValue, float64(u.WorkingSet), labels...)
		ch <- prometheus.MustNewConstMetric(c.pids, prometheus.GaugeValue, float64(u.Pids), labels...)
	}
}
