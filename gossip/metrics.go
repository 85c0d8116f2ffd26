package gossip

import "github.com/prometheus/client_golang/prometheus"

// metrics are a member's own counters; Collector adds the gauges that
// read its view.
type metrics struct {
	rtt        prometheus.Histogram
	suspicions prometheus.Counter
}

func newMetrics() *metrics {
	return &metrics{
		rtt: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "skiff_gossip_probe_rtt_seconds", Help: "Round-trip time of this member's successful probes.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5},
		}),
		suspicions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "skiff_gossip_suspicions_total", Help: "Members this member came to suspect (its probe failed).",
		}),
	}
}

var (
	membersDesc = prometheus.NewDesc("skiff_gossip_members", "Other members by state, as this member sees them.", []string{"state"}, nil)
	healthDesc  = prometheus.NewDesc("skiff_gossip_health_score", "Lifeguard's awareness of this member's own health (0 is healthy).", nil, nil)
	sentDesc    = prometheus.NewDesc("skiff_gossip_sent_bytes_total", "Bytes this member sent (UDP and TCP).", nil, nil)
)

// Collector returns the member's metrics as one collector.
func (m *Membership) Collector() prometheus.Collector { return collector{m} }

type collector struct{ m *Membership }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	c.m.metrics.rtt.Describe(ch)
	c.m.metrics.suspicions.Describe(ch)
	ch <- membersDesc
	ch <- healthDesc
	ch <- sentDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	c.m.metrics.rtt.Collect(ch)
	c.m.metrics.suspicions.Collect(ch)
	counts := map[State]int{Alive: 0, Suspect: 0, Dead: 0, Left: 0}
	for _, mem := range c.m.Members() {
		counts[mem.State]++
	}
	for s, n := range counts {
		ch <- prometheus.MustNewConstMetric(membersDesc, prometheus.GaugeValue, float64(n), string(s))
	}
	ch <- prometheus.MustNewConstMetric(healthDesc, prometheus.GaugeValue, float64(c.m.HealthScore()))
	ch <- prometheus.MustNewConstMetric(sentDesc, prometheus.CounterValue, float64(c.m.SentBytes()))
}
