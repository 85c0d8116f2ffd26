package nodeagent

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// metrics are the agent's own, served on its /metrics.
type metrics struct {
	registry          *prometheus.Registry
	created           prometheus.Counter
	creationErrors    prometheus.Counter
	runDuration       prometheus.Histogram
	imagePullDuration prometheus.Histogram
	fenced            prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		created: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "skiff_containers_created_total", Help: "Containers the agent created.",
		}),
		creationErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "skiff_container_creation_errors_total", Help: "Container creations that failed.",
		}),
		runDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "skiff_container_run_duration_seconds", Help: "How long containers ran, from start to exit.",
			Buckets: prometheus.ExponentialBuckets(0.1, 4, 10), // 100ms to about 7h
		}),
		imagePullDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "skiff_image_pull_duration_seconds", Help: "How long image pulls (with unpacking) took.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 12), // 50ms to about 100s
		}),
		fenced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "skiff_agent_fenced_total", Help: "Times the agent fenced its node: it reached neither the API server nor a gossip peer for --fence-after and stopped its Instances.",
		}),
	}
	m.registry.MustRegister(m.created, m.creationErrors, m.runDuration, m.imagePullDuration, m.fenced,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// instancesCollector counts this node's Instances by phase, from the cache.
type instancesCollector struct {
	reader client.Reader
	desc   *prometheus.Desc
}

func newInstancesCollector(r client.Reader) *instancesCollector {
	return &instancesCollector{reader: r, desc: prometheus.NewDesc("skiff_instances", "Instances bound to this node, by phase.", []string{"phase"}, nil)}
}

func (c *instancesCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *instancesCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var list skiffv1alpha1.InstanceList
	if err := c.reader.List(ctx, &list); err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	counts := map[skiffv1alpha1.InstancePhase]int{
		skiffv1alpha1.InstancePending: 0, skiffv1alpha1.InstanceRunning: 0,
		skiffv1alpha1.InstanceSucceeded: 0, skiffv1alpha1.InstanceFailed: 0,
	}
	for _, inst := range list.Items {
		phase := inst.Status.Phase
		if phase == "" {
			phase = skiffv1alpha1.InstancePending
		}
		counts[phase]++
	}
	for phase, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), string(phase))
	}
}
