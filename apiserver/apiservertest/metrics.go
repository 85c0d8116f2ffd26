package apiservertest

import (
	"bufio"
	"strconv"
	"strings"
	"testing"

	"k8s.io/client-go/rest"
)

// Requests is how many requests have been answered whose
// apiserver_request_total labels hold every one of labels (e.g.
// `code="409"`, `resource="instances"`), read from the server's /metrics
// as admin. The counters are the process's: every server a test binary
// started adds to them, so compare two readings.
func (s *Server) Requests(t testing.TB, labels ...string) int {
	t.Helper()
	return s.Metric(t, "apiserver_request_total", labels...)
}

// Metric sums the samples of the server's metric name (a counter or a
// gauge) whose labels hold every one of labels.
func (s *Server) Metric(t testing.TB, name string, labels ...string) int {
	t.Helper()
	c, err := rest.HTTPClientFor(s.Admin)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Get(s.Admin.Host + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	total := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
next:
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(line, l) {
				continue next
			}
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil && v > 0 {
			total += int(v)
			t.Logf("%s", line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return total
}

// Conflicts is how many requests on resource were answered 409 Conflict
// (the process's count, as Requests).
func (s *Server) Conflicts(t testing.TB, resource string) int {
	t.Helper()
	return s.Requests(t, `code="409"`, `resource="`+resource+`"`)
}
