package mcp

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the bridge's own: calls and their duration per tool.
type metrics struct {
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// Results of a tool call, the result label of skiff_mcp_tool_calls_total.
const (
	resultOK      = "ok"
	resultError   = "error"
	resultRefused = "refused"
)

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skiff_mcp_tool_calls_total",
			Help: "MCP tool calls by tool and result (ok, error: the API server or the arguments said no, refused: the bridge's safety rules said no).",
		}, []string{"tool", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "skiff_mcp_tool_duration_seconds",
			Help:    "Time to answer an MCP tool call, by tool.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"tool"}),
	}
	if reg != nil {
		reg.MustRegister(m.calls, m.duration)
	}
	return m
}
