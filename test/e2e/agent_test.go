package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAgentJoins runs `skiff agent` against `skiff server` and checks with
// kubectl that its Node is registered, Ready, with capacity, and that its
// Lease is renewed.
func TestAgentJoins(t *testing.T) {
	s := startServer(t, t.TempDir(), "127.0.0.1:0")
	agentDir := t.TempDir()
	agent := exec.Command(skiffBin, "agent",
		"--server", s.url, "--join-token", filepath.Join(s.dataDir, "join-token"),
		"--data-dir", agentDir, "--node-name", "e2e-node",
		// Renewals every 200 ms, and every second once gossip is healthy
		// (its default, 40 s, would outlast the wait for a renewal below).
		"--labels", "zone=a", "--taints", "dedicated=e2e:NoSchedule", "--lease-interval", "200ms", "--gossip-lease-interval", "1s",
		"--runtime", "sim", "--listen", "127.0.0.1:0", "--gossip-bind", "127.0.0.1:0")
	var out strings.Builder
	agent.Stdout, agent.Stderr = &out, &out
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = agent.Process.Signal(syscall.SIGTERM)
		_ = agent.Wait()
		if t.Failed() {
			t.Logf("agent output:\n%s", out.String())
		}
	})

	waitFor(t, 60*time.Second, func() (bool, error) {
		phase, err := s.kubectl("get", "node", "e2e-node", "-o", "jsonpath={.status.phase}")
		return err == nil && phase == "Ready", nil
	})
	wide := s.mustKubectl(t, "get", "no", "e2e-node", "-o", "wide")
	if !strings.Contains(wide, "e2e-node") || !strings.Contains(wide, "Ready") {
		t.Errorf("kubectl get no -o wide:\n%s", wide)
	}
	cpu := s.mustKubectl(t, "get", "node", "e2e-node", "-o", "jsonpath={.status.capacity.cpu}")
	if cpu == "" {
		t.Errorf("node has no cpu capacity")
	}
	if got := s.mustKubectl(t, "get", "node", "e2e-node", "-o", "jsonpath={.metadata.labels.zone} {.spec.taints[0].key}"); got != "a dedicated" {
		t.Errorf("labels and taints from flags: %q", got)
	}
	renew := func() string {
		r, _ := s.kubectl("get", "lease", "-n", "skiff-node-lease", "e2e-node", "-o", "jsonpath={.spec.renewTime}")
		return r
	}
	var first string
	waitFor(t, 30*time.Second, func() (bool, error) { first = renew(); return first != "", nil })
	waitFor(t, 30*time.Second, func() (bool, error) {
		r := renew()
		return r != "" && r != first, nil
	})

	t.Run("agent metrics come from the API server's own client identity", func(t *testing.T) {
		if m := s.mustKubectl(t, "get", "--raw", "/apis/skiff.dev/v1alpha1/nodes/e2e-node/metrics"); !strings.Contains(m, "skiff_agent_") {
			t.Errorf("the node's metrics through the API server:\n%.500s", m)
		}
		endpoint := s.mustKubectl(t, "get", "node", "e2e-node", "-o", "jsonpath={.status.agentEndpoint}")
		serving, err := tls.LoadX509KeyPair(filepath.Join(s.dataDir, "serving.crt"), filepath.Join(s.dataDir, "serving.key"))
		if err != nil {
			t.Fatal(err)
		}
		for name, certs := range map[string][]tls.Certificate{"no certificate": nil, "the API server's serving certificate": {serving}} {
			c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: certs}}}
			resp, err := c.Get("https://" + endpoint + "/metrics")
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("the agent's /metrics with %s: %d, want 403", name, resp.StatusCode)
			}
		}
	})

	t.Run("the node's client certificate is a year long and kept 0600", func(t *testing.T) {
		path := filepath.Join(agentDir, "node.crt")
		info, err := os.Stat(path)
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", path, info, err)
		}
		data, _ := os.ReadFile(path)
		block, _ := pem.Decode(data)
		if block == nil {
			t.Fatalf("%s holds no PEM", path)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if life := cert.NotAfter.Sub(cert.NotBefore); life > 367*24*time.Hour || cert.Subject.CommonName != "skiff:node:e2e-node" {
			t.Errorf("node.crt: %s for %v", cert.Subject.CommonName, life)
		}
	})
}
