package apiservertest

import (
	"bufio"
	"strconv"
	"strings"
	"testing"

	"k8s.io/client-go/rest"
)

// Conflicts is how many requests on resource the server has answered
// with 409 Conflict (its apiserver_request_total), read as admin.
func (s *Server) Conflicts(t testing.TB, resource string) int {
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
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "apiserver_request_total{") || !strings.Contains(line, `code="409"`) || !strings.Contains(line, `resource="`+resource+`"`) {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			total += int(v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return total
}
