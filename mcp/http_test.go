package mcp_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/apiserver"
	"skiff.dev/skiff/apiserver/apiservertest"
	"skiff.dev/skiff/identity"
	"skiff.dev/skiff/mcp"
)

// httpBridge is `skiff mcp --http` in process, acting as its callers
// with the bridge's own identity.
type httpBridge struct {
	url string
	ca  *x509.CertPool
}

func startHTTPBridge(t *testing.T, c *cluster, stateless bool) *httpBridge {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", filepath.Join(c.s.DataDir, apiserver.MCPKubeconfigFile))
	if err != nil {
		t.Fatal(err)
	}
	conns, err := mcp.NewConnections(rc, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conns.Close)
	cfg := mcp.DefaultConfig()
	cfg.Stateless = stateless
	reg := prometheus.NewRegistry()
	b, err := mcp.New(cfg, conns, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	dir := t.TempDir()
	hcfg := mcp.HTTPConfig{Listen: "127.0.0.1:0", CertFile: filepath.Join(dir, "serving.crt"), KeyFile: filepath.Join(dir, "serving.key"), Stateless: stateless}
	srv, err := mcp.NewHTTPServer(hcfg, b, reg)
	if err != nil {
		t.Fatal(err)
	}
	apiservertest.Run(t, context.Background(), srv.Run)
	pem, err := os.ReadFile(hcfg.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &httpBridge{url: srv.URL(), ca: pool}
}

// httpClient presents id's self-signed certificate (none when id is nil).
func (h *httpBridge) httpClient(t *testing.T, id *identity.Identity) *http.Client {
	t.Helper()
	tc := &tls.Config{RootCAs: h.ca}
	if id != nil {
		certPEM, err := id.ClientCertificate("caller", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		keyPEM, err := id.KeyPEM()
		if err != nil {
			t.Fatal(err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
}

func (h *httpBridge) connect(t *testing.T, id *identity.Identity, protocol string) (*sdk.ClientSession, error) {
	t.Helper()
	cl := sdk.NewClient(&sdk.Implementation{Name: "skiff-test", Version: "v0"}, nil)
	cs, err := cl.Connect(context.Background(), &sdk.StreamableClientTransport{Endpoint: h.url, HTTPClient: h.httpClient(t, id), MaxRetries: -1},
		&sdk.ClientSessionOptions{ProtocolVersion: protocol})
	if err == nil {
		t.Cleanup(func() { cs.Close() })
	}
	return cs, err
}

func callTool(t *testing.T, cs *sdk.ClientSession, name string, args any) (string, bool) {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return textOf(res), !res.IsError
}

func adminIdentity(t *testing.T, c *cluster) *identity.Identity {
	t.Helper()
	id, err := identity.ParseKeyPEM(c.s.Admin.KeyData)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestHTTPActsAsTheCaller: over HTTP a call without a certificate is
// refused, and each caller acts with its own rights through the API
// server, in every protocol version the mode accepts.
func TestHTTPActsAsTheCaller(t *testing.T) {
	c := startCluster(t, 0, false)
	ctx := context.Background()
	admin := adminIdentity(t, c)
	nodeID, _ := identity.New()
	if err := c.admin.Create(ctx, &skiffv1alpha1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Spec: skiffv1alpha1.NodeSpec{PublicKey: nodeID.PublicKeyString()}}); err != nil {
		t.Fatal(err)
	}
	stranger, _ := identity.New()

	for _, mode := range []struct {
		name      string
		stateless bool
		protocols []string
	}{
		{"stateful", false, []string{"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"}},
		{"stateless", true, []string{"2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26"}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			h := startHTTPBridge(t, c, mode.stateless)
			resp, err := h.httpClient(t, nil).Post(h.url, "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("a call without a certificate: %s, want 401", resp.Status)
			}
			for path, want := range map[string]string{"/healthz": "ok", "/metrics": "skiff_mcp_tool_duration_seconds"} {
				resp, err := h.httpClient(t, nil).Get(strings.TrimSuffix(h.url, mcp.MCPPath) + path)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || (path == "/healthz" && !strings.Contains(string(body), want)) {
					t.Fatalf("%s: %s %s", path, resp.Status, body)
				}
			}
			if _, err := h.connect(t, nil, mode.protocols[0]); err == nil {
				t.Fatal("connected without a certificate")
			}
			for _, protocol := range mode.protocols {
				t.Run(protocol, func(t *testing.T) {
					cs, err := h.connect(t, admin, protocol)
					if err != nil {
						t.Fatalf("connect: %v", err)
					}
					name := "h-" + mode.name + "-" + strings.ReplaceAll(protocol, "-", "")
					if text, ok := callTool(t, cs, "create_workload", map[string]any{"name": name, "image": "busybox"}); !ok {
						t.Fatalf("the admin's create_workload: %s", text)
					}
					if text, ok := callTool(t, cs, "list_workloads", map[string]any{"name_contains": name}); !ok || !strings.Contains(text, name) {
						t.Fatalf("the admin's list_workloads: %s", text)
					}
				})
			}
			t.Run("a node's key", func(t *testing.T) {
				cs, err := h.connect(t, nodeID, mode.protocols[0])
				if err != nil {
					t.Fatal(err)
				}
				apiservertest.Eventually(t, "the node's key trusted", func() bool {
					_, ok := callTool(t, cs, "get_node", map[string]any{"name": "n1"})
					return ok
				})
				text, ok := callTool(t, cs, "create_workload", map[string]any{"name": "by-node", "image": "busybox"})
				if ok || !strings.Contains(text, `node "n1" may not`) {
					t.Fatalf("the node's create_workload: %s", text)
				}
			})
			t.Run("an untrusted key", func(t *testing.T) {
				cs, err := h.connect(t, stranger, mode.protocols[0])
				if err != nil {
					t.Fatal(err)
				}
				text, ok := callTool(t, cs, "list_workloads", map[string]any{})
				if ok || !strings.Contains(text, "is not trusted") {
					t.Fatalf("a stranger's list_workloads: %s", text)
				}
			})
			if mode.stateless {
				return
			}
			t.Run("a session is its caller's", func(t *testing.T) {
				cs, err := h.connect(t, admin, mode.protocols[0])
				if err != nil {
					t.Fatal(err)
				}
				req, _ := http.NewRequest(http.MethodPost, h.url, strings.NewReader(`{"jsonrpc":"2.0","id":7,"method":"tools/list"}`))
				req.Header.Set("Mcp-Session-Id", cs.ID())
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", "application/json, text/event-stream")
				resp, err := h.httpClient(t, stranger).Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusForbidden {
					t.Fatalf("another key on the admin's session: %s, want 403", resp.Status)
				}
			})
		})
	}
}
