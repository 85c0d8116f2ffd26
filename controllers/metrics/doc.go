// Package metrics holds the Prometheus metrics the controllers report:
// scheduling attempts and latency, reconciliation cycles, errors, latency
// and drift, and the cluster gauges read from the informer cache at scrape
// time. Nothing is registered globally: New registers on the Registerer it
// is given, and the server serves that registry next to the apiserver's.
package metrics
