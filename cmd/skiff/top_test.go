package main

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"
)

// agentMetrics is an agent's /metrics text with the usage metrics at
// milliseconds ms: node CPU seconds, and web-1's two containers' and
// db-0's CPU seconds, with fixed memory.
func agentMetrics(ms int64, node, web, log, db float64) string {
	return strings.NewReplacer("MS", itoa(ms)).Replace(`# HELP skiff_node_cpu_usage_seconds_total CPU
# TYPE skiff_node_cpu_usage_seconds_total counter
skiff_node_cpu_usage_seconds_total ` + ftoa(node) + ` MS
# TYPE skiff_node_memory_working_set_bytes gauge
skiff_node_memory_working_set_bytes 2.147483648e+09
# TYPE skiff_container_cpu_usage_seconds_total counter
skiff_container_cpu_usage_seconds_total{container="web",instance="web-1",namespace="default"} ` + ftoa(web) + ` MS
skiff_container_cpu_usage_seconds_total{container="log",instance="web-1",namespace="default"} ` + ftoa(log) + ` MS
skiff_container_cpu_usage_seconds_total{container="db",instance="db-0",namespace="prod"} ` + ftoa(db) + ` MS
# TYPE skiff_container_memory_working_set_bytes gauge
skiff_container_memory_working_set_bytes{container="web",instance="web-1",namespace="default"} 1.048576e+07
skiff_container_memory_working_set_bytes{container="log",instance="web-1",namespace="default"} 2.097152e+06
skiff_container_memory_working_set_bytes{container="db",instance="db-0",namespace="prod"} 1.073741824e+08
# TYPE go_goroutines gauge
go_goroutines 42
`)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func ftoa(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func parse(t *testing.T, text string) *usageSample {
	t.Helper()
	s, err := parseUsage(strings.NewReader(text), time.UnixMilli(0))
	if err != nil {
		t.Fatal(err)
	}
	return &s
}

func TestTopUsage(t *testing.T) {
	// Two readings 1.25 s apart (by the agent's timestamps): the node
	// used 0.5 s of CPU, web 0.25 s, log 0.0125 s, db 1.25 s.
	first := map[string]*usageSample{"n1": parse(t, agentMetrics(1000, 100, 10, 1, 50))}
	second := map[string]*usageSample{"n1": parse(t, agentMetrics(2250, 100.5, 10.25, 1.0125, 51.25))}

	node := nodeRow("n1", first["n1"], second["n1"])
	node.cpuAlloc, node.memAlloc = 2000, 8<<30
	lost := nodeRow("n2", nil, nil)
	var out bytes.Buffer
	if err := printNodes(&out, []usageRow{node, lost}); err != nil {
		t.Fatal(err)
	}
	want := "NAME   CPU(cores)   CPU(%)      MEMORY(bytes)   MEMORY(%)\n" +
		"n1     400m         20%         2048Mi          25%\n" +
		"n2     <unknown>    <unknown>   <unknown>       <unknown>\n"
	if out.String() != want {
		t.Errorf("top nodes:\n%s\nwant:\n%s", out.String(), want)
	}

	all := instanceRows(first, second, func(string, string) bool { return true })
	sortRows(all, "cpu")
	out.Reset()
	if err := printInstances(&out, all, true); err != nil {
		t.Fatal(err)
	}
	want = "NAMESPACE   NAME    CPU(cores)   MEMORY(bytes)\n" +
		"prod        db-0    1000m        102Mi\n" +
		"default     web-1   210m         12Mi\n"
	if out.String() != want {
		t.Errorf("top instances -A --sort-by cpu:\n%s\nwant:\n%s", out.String(), want)
	}

	one := instanceRows(first, second, func(ns, _ string) bool { return ns == "default" })
	out.Reset()
	if err := printInstances(&out, one, false); err != nil {
		t.Fatal(err)
	}
	want = "NAME    CPU(cores)   MEMORY(bytes)\n" +
		"web-1   210m         12Mi\n"
	if out.String() != want {
		t.Errorf("top instances -n default:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestMillicores(t *testing.T) {
	at := func(s float64, ms int64) cpuCounter { return cpuCounter{seconds: s, at: time.UnixMilli(ms)} }
	for _, tc := range []struct {
		a, b   cpuCounter
		want   int64
		wantOK bool
	}{
		{at(1, 0), at(2, 1000), 1000, true},
		{at(1, 0), at(1.5, 2000), 250, true},
		{at(1, 0), at(1, 1000), 0, true},
		{at(5, 0), at(1, 1000), 0, false}, // restarted: the counter began again
		{at(1, 1000), at(2, 1000), 0, false},
	} {
		got, ok := millicores(tc.a, tc.b)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("millicores(%v, %v) = %d %v, want %d %v", tc.a, tc.b, got, ok, tc.want, tc.wantOK)
		}
	}
}

// TestParseUsageWithoutTimestamps: a counter without a timestamp is
// taken as read when fetched; an agent without usage metrics has none.
func TestParseUsageWithoutTimestamps(t *testing.T) {
	fetched := time.Unix(100, 0)
	s, err := parseUsage(strings.NewReader("skiff_node_cpu_usage_seconds_total 3\n"), fetched)
	if err != nil || s.node == nil || !s.node.at.Equal(fetched) || s.node.seconds != 3 {
		t.Errorf("parseUsage: %+v %v", s, err)
	}
	s, err = parseUsage(strings.NewReader("go_goroutines 1\n"), fetched)
	if err != nil || s.node != nil || len(s.containers) != 0 {
		t.Errorf("no usage metrics: %+v %v", s, err)
	}
	if _, err := parseUsage(strings.NewReader("not metrics {"), fetched); err == nil {
		t.Error("garbage parsed")
	}
}
