package main

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"text/tabwriter"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The agent's usage metrics (nodeagent/usagemetrics.go) that skiff top reads.
const (
	metricNodeCPU         = "skiff_node_cpu_usage_seconds_total"
	metricNodeMemory      = "skiff_node_memory_working_set_bytes"
	metricContainerCPU    = "skiff_container_cpu_usage_seconds_total"
	metricContainerMemory = "skiff_container_memory_working_set_bytes"
	labelUsageNamespace   = "namespace"
	labelUsageInstance    = "instance"
	labelUsageContainer   = "container"
)

// How skiff top prints what it could not read, and memory.
const (
	unknownUsage = "<unknown>"
	bytesPerMi   = 1 << 20
)

// cpuCounter is a CPU time counter as read at one moment.
type cpuCounter struct {
	seconds float64
	at      time.Time
}

// containerKey names a container: namespace, Instance and container.
type containerKey struct{ namespace, instance, container string }

// containerUsage is one container in one scrape.
type containerUsage struct {
	cpu    cpuCounter
	memory float64
}

// usageSample is one scrape of an agent's metrics.
type usageSample struct {
	node       *cpuCounter // nil: the agent reports none
	nodeMemory float64
	containers map[containerKey]containerUsage
}

// parseUsage reads the usage metrics from an agent's Prometheus text;
// fetched stands in for the time of a counter that carries none.
func parseUsage(r io.Reader, fetched time.Time) (usageSample, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return usageSample{}, err
	}
	s := usageSample{containers: map[containerKey]containerUsage{}}
	counter := func(m *dto.Metric) cpuCounter {
		c := cpuCounter{seconds: value(m), at: fetched}
		if m.TimestampMs != nil {
			c.at = time.UnixMilli(m.GetTimestampMs())
		}
		return c
	}
	if f := families[metricNodeCPU]; f != nil && len(f.Metric) > 0 {
		c := counter(f.Metric[0])
		s.node = &c
	}
	if f := families[metricNodeMemory]; f != nil && len(f.Metric) > 0 {
		s.nodeMemory = value(f.Metric[0])
	}
	for _, m := range families[metricContainerCPU].GetMetric() {
		k := keyOf(m)
		u := s.containers[k]
		u.cpu = counter(m)
		s.containers[k] = u
	}
	for _, m := range families[metricContainerMemory].GetMetric() {
		k := keyOf(m)
		u := s.containers[k]
		u.memory = value(m)
		s.containers[k] = u
	}
	return s, nil
}

// value is a sample's value, whatever its type (a metric without a TYPE
// line is untyped).
func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return m.GetUntyped().GetValue()
}

func keyOf(m *dto.Metric) containerKey {
	var k containerKey
	for _, l := range m.GetLabel() {
		switch l.GetName() {
		case labelUsageNamespace:
			k.namespace = l.GetValue()
		case labelUsageInstance:
			k.instance = l.GetValue()
		case labelUsageContainer:
			k.container = l.GetValue()
		}
	}
	return k
}

// millicores is the CPU rate between two readings of a counter; false
// when they cannot tell one (no time between them, or the counter reset:
// the container restarted).
func millicores(a, b cpuCounter) (int64, bool) {
	elapsed := b.at.Sub(a.at).Seconds()
	if elapsed <= 0 || b.seconds < a.seconds {
		return 0, false
	}
	return int64(math.Round((b.seconds - a.seconds) / elapsed * 1000)), true
}

// usageRow is one line of skiff top: a node or an Instance.
type usageRow struct {
	namespace, name string
	// known is false for a node whose agent did not answer.
	known  bool
	cpu    int64 // millicores
	memory int64 // bytes
	// allocatable cpu (millicores) and memory (bytes), for a node's
	// percentages; 0 leaves them out.
	cpuAlloc, memAlloc int64
}

// instanceRows sums each Instance's containers over the two scrapes of
// every node: CPU from the counters' rate, memory from the later scrape.
// A container seen in one scrape only is left out, as kubectl top does.
func instanceRows(first, second map[string]*usageSample, keep func(namespace, name string) bool) []usageRow {
	byInstance := map[[2]string]*usageRow{}
	for node, b := range second {
		a, ok := first[node]
		if !ok {
			continue
		}
		for k, ub := range b.containers {
			ua, ok := a.containers[k]
			if !ok || !keep(k.namespace, k.instance) {
				continue
			}
			cpu, ok := millicores(ua.cpu, ub.cpu)
			if !ok {
				continue
			}
			id := [2]string{k.namespace, k.instance}
			row := byInstance[id]
			if row == nil {
				row = &usageRow{namespace: k.namespace, name: k.instance, known: true}
				byInstance[id] = row
			}
			row.cpu += cpu
			row.memory += int64(ub.memory)
		}
	}
	rows := make([]usageRow, 0, len(byInstance))
	for _, r := range byInstance {
		rows = append(rows, *r)
	}
	return rows
}

// nodeRow is a node's usage over its two scrapes; unknown without them.
func nodeRow(name string, a, b *usageSample) usageRow {
	row := usageRow{name: name}
	if a == nil || b == nil || a.node == nil || b.node == nil {
		return row
	}
	row.cpu, row.known = millicores(*a.node, *b.node)
	row.memory = int64(b.nodeMemory)
	return row
}

// sortRows orders by name (namespace first), or by cpu or memory, most
// first; unknown rows go last.
func sortRows(rows []usageRow, by string) {
	slices.SortStableFunc(rows, func(a, b usageRow) int {
		if a.known != b.known {
			if a.known {
				return -1
			}
			return 1
		}
		switch by {
		case "cpu":
			if c := cmp.Compare(b.cpu, a.cpu); c != 0 {
				return c
			}
		case "memory":
			if c := cmp.Compare(b.memory, a.memory); c != 0 {
				return c
			}
		}
		return cmp.Or(cmp.Compare(a.namespace, b.namespace), cmp.Compare(a.name, b.name))
	})
}

// printNodes prints as kubectl top nodes does.
func printNodes(out io.Writer, rows []usageRow) error {
	tw := tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCPU(cores)\tCPU(%)\tMEMORY(bytes)\tMEMORY(%)")
	for _, r := range rows {
		if !r.known {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.name, unknownUsage, unknownUsage, unknownUsage, unknownUsage)
			continue
		}
		fmt.Fprintf(tw, "%s\t%dm\t%s\t%dMi\t%s\n", r.name, r.cpu, percent(r.cpu, r.cpuAlloc), r.memory/bytesPerMi, percent(r.memory, r.memAlloc))
	}
	return tw.Flush()
}

// printInstances prints as kubectl top pods does, with the namespace
// when all namespaces are shown.
func printInstances(out io.Writer, rows []usageRow, allNamespaces bool) error {
	tw := tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
	if allNamespaces {
		fmt.Fprint(tw, "NAMESPACE\t")
	}
	fmt.Fprintln(tw, "NAME\tCPU(cores)\tMEMORY(bytes)")
	for _, r := range rows {
		if allNamespaces {
			fmt.Fprintf(tw, "%s\t", r.namespace)
		}
		fmt.Fprintf(tw, "%s\t%dm\t%dMi\n", r.name, r.cpu, r.memory/bytesPerMi)
	}
	return tw.Flush()
}

func percent(used, of int64) string {
	if of <= 0 {
		return unknownUsage
	}
	return fmt.Sprintf("%d%%", used*100/of)
}
