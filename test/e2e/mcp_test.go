package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"k8s.io/client-go/tools/clientcmd"
)

// mcpProcess is a running `skiff mcp --http`.
type mcpProcess struct {
	url      string
	certFile string
}

// startMCPOverHTTP runs `skiff mcp --http 127.0.0.1:0` with the bridge's
// own kubeconfig of s, until the test ends.
func startMCPOverHTTP(t *testing.T, s *server, extra ...string) *mcpProcess {
	t.Helper()
	url, cert := startMCPHTTP(t, filepath.Join(s.dataDir, "mcp.kubeconfig"), t.TempDir(), extra...)
	return &mcpProcess{url: url, certFile: cert}
}

// client is an HTTP client trusting p's certificate and presenting the
// identity of kubeconfig (none when empty).
func (p *mcpProcess) client(t *testing.T, kubeconfig string) *http.Client {
	t.Helper()
	ca, err := os.ReadFile(p.certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	tc := &tls.Config{RootCAs: pool}
	if kubeconfig != "" {
		rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := tls.X509KeyPair(rc.CertData, rc.KeyData)
		if err != nil {
			t.Fatal(err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
}

func mcpConnect(t *testing.T, transport sdk.Transport, opts *sdk.ClientOptions) *sdk.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startupTimeout)
	defer cancel()
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "skiff-e2e", Version: "v0"}, opts).Connect(ctx, transport, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// mcpCall calls a tool and returns its structured answer, or its error text.
func mcpCall(t *testing.T, cs *sdk.ClientSession, name string, args map[string]any) (map[string]any, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), kubectlTimeout)
	defer cancel()
	res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		return nil, err.Error()
	}
	var text []string
	for _, c := range res.Content {
		if tc, ok := c.(*sdk.TextContent); ok {
			text = append(text, tc.Text)
		}
	}
	if res.IsError {
		return nil, strings.Join(text, "\n")
	}
	out, _ := res.StructuredContent.(map[string]any)
	return out, ""
}

func mcpMust(t *testing.T, cs *sdk.ClientSession, name string, args map[string]any) map[string]any {
	t.Helper()
	out, errText := mcpCall(t, cs, name, args)
	if out == nil {
		t.Fatalf("%s %v: %s", name, args, errText)
	}
	return out
}

// TestMCPAgentDrivesAWorkload is an AI agent's session through the built
// binary: over stdio it lists and checks the tools, deploys a Workload
// that runs on runc, scales it, reads its log, asks why an impossible
// one fits nowhere and deletes with and without confirmation; over HTTP
// a call without a certificate is refused and a subscription hears
// `kubectl scale`; in read-only mode every write is refused.
func TestMCPAgentDrivesAWorkload(t *testing.T) {
	s, _ := startLocalNode(t, "10.250.3.1/24")
	cs := mcpConnect(t, &sdk.CommandTransport{Command: exec.Command(skiffBin, "mcp", "--kubeconfig", s.kubeconfig)}, nil)

	tools, err := cs.ListTools(context.Background(), nil)
	if err != nil || len(tools.Tools) < 17 {
		t.Fatalf("tools/list: %d tools, %v", len(tools.Tools), err)
	}
	for _, tool := range tools.Tools {
		for what, schema := range map[string]any{"input": tool.InputSchema, "output": tool.OutputSchema} {
			data, _ := json.Marshal(schema)
			var js jsonschema.Schema
			if err := json.Unmarshal(data, &js); err != nil {
				t.Fatalf("%s %s schema: %v", tool.Name, what, err)
			}
			if _, err := js.Resolve(nil); err != nil || js.Type != "object" {
				t.Fatalf("%s %s schema is not a valid object schema (%v): %s", tool.Name, what, err, data)
			}
		}
	}

	mcpMust(t, cs, "create_workload", map[string]any{"name": "agent", "image": "skiff.local/busybox:latest", "replicas": 1,
		"cpu_cores": 0.25, "memory_mb": 64, "command": []string{"sh", "-c", "echo hello from an agent; exec sleep 3600"}})
	healthy := func(n int) {
		t.Helper()
		var last any
		defer func() {
			if t.Failed() {
				t.Logf("get_workload said last: %v", last)
			}
		}()
		waitFor(t, 120*time.Second, func() (bool, error) {
			out, errText := mcpCall(t, cs, "get_workload", map[string]any{"name": "agent"})
			if out == nil {
				last = errText
				return false, nil
			}
			last = out["instances"]
			sum := out["summary"].(map[string]any)
			return sum["health"] == "Healthy" && sum["ready"] == fmt.Sprintf("%d/%d", n, n), nil
		})
	}
	healthy(1)
	mcpMust(t, cs, "scale_workload", map[string]any{"name": "agent", "replicas": 2})
	healthy(2)
	insts := mcpMust(t, cs, "list_instances", map[string]any{"workload": "agent"})["items"].([]any)
	inst := insts[0].(map[string]any)
	if inst["phase"] != "Running" || inst["node"] != "local" {
		t.Fatalf("list_instances: %v", insts)
	}
	waitFor(t, 30*time.Second, func() (bool, error) {
		out, _ := mcpCall(t, cs, "get_logs", map[string]any{"instance": inst["name"]})
		return out != nil && strings.Contains(out["log"].(string), "hello from an agent"), nil
	})
	plan := mcpMust(t, cs, "plan_workload", map[string]any{"workload": map[string]any{"name": "too-big", "image": "skiff.local/busybox:latest", "cpu_cores": 512}})
	if act := plan["actions"].([]any)[0].(map[string]any); !strings.Contains(act["whyNot"].(string), "0/1 nodes are available: 1 insufficient cpu") {
		t.Fatalf("plan_workload of 512 cores: %v", plan)
	}

	t.Run("over HTTP", func(t *testing.T) {
		p := startMCPOverHTTP(t, s)
		resp, err := p.client(t, "").Post(p.url, "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("a call without a certificate: %s, want 401 Unauthorized", resp.Status)
		}
		updated := make(chan string, 16)
		hs := mcpConnect(t, &sdk.StreamableClientTransport{Endpoint: p.url, HTTPClient: p.client(t, s.kubeconfig)}, &sdk.ClientOptions{
			ResourceUpdatedHandler: func(_ context.Context, req *sdk.ResourceUpdatedNotificationRequest) { updated <- req.Params.URI },
		})
		if err := hs.Subscribe(context.Background(), &sdk.SubscribeParams{URI: "skiff://workloads/default/agent"}); err != nil {
			t.Fatal(err)
		}
		s.mustKubectl(t, "scale", "workload", "agent", "--replicas=3")
		select {
		case uri := <-updated:
			if uri != "skiff://workloads/default/agent" {
				t.Fatalf("notified of %s", uri)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("no notifications/resources/updated after kubectl scale")
		}
		if st := mcpMust(t, hs, "get_cluster_status", map[string]any{}); st["nodes"].(map[string]any)["ready"].(float64) != 1 {
			t.Fatalf("get_cluster_status over HTTP: %v", st)
		}
		healthy(3)
	})

	t.Run("read-only", func(t *testing.T) {
		ro := mcpConnect(t, &sdk.CommandTransport{Command: exec.Command(skiffBin, "mcp", "--kubeconfig", s.kubeconfig, "--read-only")}, nil)
		args := map[string]any{"name": "agent", "image": "skiff.local/busybox:v2", "replicas": 0, "confirm": true,
			"manifest": "apiVersion: v1\nkind: Namespace\nmetadata: {name: ro}\n"}
		for _, tool := range []string{"create_workload", "update_workload", "scale_workload", "delete_workload", "rollback_workload", "restart_workload", "apply_manifest"} {
			if out, _ := mcpCall(t, ro, tool, args); out != nil {
				t.Errorf("read-only skiff mcp ran %s: %v", tool, out)
			}
		}
		if image := s.jsonpath(t, "{.spec.template.spec.containers[0].image}", "workload", "agent"); image != "skiff.local/busybox:latest" {
			t.Fatalf("read-only changed the image to %s", image)
		}
	})

	_, errText := mcpCall(t, cs, "delete_workload", map[string]any{"name": "agent"})
	if !strings.Contains(errText, `"confirm": true`) {
		t.Fatalf("an unconfirmed delete from a client that cannot elicit: %q", errText)
	}
	if _, err := s.kubectl("get", "workload", "agent"); err != nil {
		t.Fatalf("the unconfirmed delete deleted: %v", err)
	}
	mcpMust(t, cs, "delete_workload", map[string]any{"name": "agent", "confirm": true})
	waitFor(t, 120*time.Second, func() (bool, error) {
		out, err := s.kubectl("get", "instances", "-l", "app=agent", "-o", "name")
		return err == nil && strings.TrimSpace(out) == "", nil
	})
}
