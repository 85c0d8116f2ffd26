// Package loadgen is the load skiff's benchmarks make against an API
// server: the Workload of about 1 KB that `make bench`'s creates/s
// figure creates, and a create over plain HTTP that reads the whole
// reply, as a client that only wants to know the object was made.
package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Workload renders a Workload of about 1 KB named name, in JSON.
func Workload(name string) []byte {
	return []byte(fmt.Sprintf(`{"apiVersion":"skiff.dev/v1alpha1","kind":"Workload","metadata":{"name":%q,"labels":{"bench":"yes"},"annotations":{"note":%q}},"spec":{"replicas":2,"template":{"metadata":{"labels":{"app":%q}},"spec":{"containers":[{"name":"web","image":"registry.local/web:1.0","args":["--port","8080"],"ports":[{"containerPort":8080}],"resources":{"requests":{"cpu":"100m","memory":"64Mi"},"limits":{"cpu":"1","memory":"128Mi"}}}]}}}}`,
		name, strings.Repeat("x", 560), name))
}

// Create POSTs the JSON body of the object name to the collection at url
// and reads the reply; anything but 201 Created is an error.
func Create(ctx context.Context, hc *http.Client, url, name string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("create %s: %s", name, resp.Status)
	}
	return nil
}
