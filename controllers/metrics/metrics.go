package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Schedule attempt results, the values of skiff_schedule_attempts_total's
// result label (kube-scheduler's names).
const (
	ResultScheduled     = "scheduled"
	ResultUnschedulable = "unschedulable"
	ResultError         = "error"
)

// Metrics are the controllers' own instruments. A nil *Metrics is valid and
// records nothing, so tests need not build one.
type Metrics struct {
	// ScheduleAttempts counts scheduling attempts by result.
	ScheduleAttempts *prometheus.CounterVec
	// SchedulingDuration is the time from picking an Instance up to its bind
	// (or no-fit verdict).
	SchedulingDuration prometheus.Histogram
	// ReconcileCycles counts reconciliations by controller.
	ReconcileCycles *prometheus.CounterVec
	// ReconcileDuration is one reconciliation's wall time by controller.
	ReconcileDuration *prometheus.HistogramVec
	// ReconcileErrors counts reconciliations that failed, by controller.
	ReconcileErrors *prometheus.CounterVec
	// DriftMagnitude is the number of changes between a Workload's desired
	// and observed state at its last reconciliation.
	DriftMagnitude *prometheus.GaugeVec
}

// New makes the instruments and registers them on reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		ScheduleAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skiff_schedule_attempts_total",
			Help: "Scheduling attempts by result: scheduled, unschedulable or error.",
		}, []string{"result"}),
		SchedulingDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "skiff_scheduling_duration_seconds",
			Help:    "Time to schedule one Instance: filter, score and bind.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		ReconcileCycles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skiff_reconciliation_cycles_total",
			Help: "Reconciliations run, by controller.",
		}, []string{"controller"}),
		ReconcileDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "skiff_reconciliation_duration_seconds",
			Help:    "Wall time of one reconciliation, by controller.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"controller"}),
		ReconcileErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skiff_reconciliation_errors_total",
			Help: "Reconciliations that returned an error, by controller.",
		}, []string{"controller"}),
		DriftMagnitude: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "skiff_drift_magnitude",
			Help: "Changes between a Workload's desired and observed state at its last reconciliation.",
		}, []string{"namespace", "workload"}),
	}
	for _, result := range []string{ResultScheduled, ResultUnschedulable, ResultError} {
		m.ScheduleAttempts.WithLabelValues(result)
	}
	reg.MustRegister(m.ScheduleAttempts, m.SchedulingDuration, m.ReconcileCycles,
		m.ReconcileDuration, m.ReconcileErrors, m.DriftMagnitude)
	return m
}

// ScheduleAttempt records one scheduling attempt and how long it took.
func (m *Metrics) ScheduleAttempt(result string, seconds float64) {
	if m == nil {
		return
	}
	m.ScheduleAttempts.WithLabelValues(result).Inc()
	m.SchedulingDuration.Observe(seconds)
}

// Reconciled records one reconciliation of controller.
func (m *Metrics) Reconciled(controller string, seconds float64, err error) {
	if m == nil {
		return
	}
	m.ReconcileCycles.WithLabelValues(controller).Inc()
	m.ReconcileDuration.WithLabelValues(controller).Observe(seconds)
	// The series exists from the first cycle on, at 0 until an error.
	errs := m.ReconcileErrors.WithLabelValues(controller)
	if err != nil {
		errs.Inc()
	}
}

// Drift records a Workload's drift magnitude.
func (m *Metrics) Drift(namespace, workload string, magnitude int) {
	if m == nil {
		return
	}
	m.DriftMagnitude.WithLabelValues(namespace, workload).Set(float64(magnitude))
}

// ForgetWorkload drops a deleted Workload's series.
func (m *Metrics) ForgetWorkload(namespace, workload string) {
	if m == nil {
		return
	}
	m.DriftMagnitude.DeleteLabelValues(namespace, workload)
}
