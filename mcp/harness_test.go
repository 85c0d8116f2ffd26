package mcp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"skiff.dev/skiff/apiserver/apiservertest"
	"skiff.dev/skiff/controllers"
	"skiff.dev/skiff/mcp"
	"skiff.dev/skiff/nodeagent"
)

var eventually = apiservertest.Eventually

// cluster is an in-process control plane, optionally with the controllers
// and a simulated fleet.
type cluster struct {
	s     *apiservertest.Server
	admin client.WithWatch
}

func startCluster(t *testing.T, nodes int, withControllers bool) *cluster {
	t.Helper()
	s := apiservertest.Start(t)
	ctx := context.Background()
	// Real agents on the simulated runtime: they serve their Instances' logs.
	for i := 0; i < nodes; i++ {
		acfg := nodeagent.DefaultConfig()
		acfg.Server, acfg.JoinToken, acfg.DataDir, acfg.NodeName = s.URL, s.JoinTokenFile, t.TempDir(), fmt.Sprintf("sim-%d", i)
		acfg.LeaseInterval, acfg.Runtime, acfg.Listen = time.Second, "sim", "127.0.0.1:0"
		agent, err := nodeagent.New(acfg)
		if err != nil {
			t.Fatal(err)
		}
		apiservertest.Run(t, ctx, agent.Run)
	}
	if withControllers {
		cfg := controllers.DefaultConfig()
		cfg.SkipNameValidation = true
		c, err := controllers.New(cfg, s.Admin)
		if err != nil {
			t.Fatal(err)
		}
		apiservertest.Run(t, ctx, c.Start)
	}
	admin, err := client.NewWithWatch(s.Admin, client.Options{Scheme: apiservertest.Scheme(t)})
	if err != nil {
		t.Fatal(err)
	}
	apiservertest.WaitReadyNodes(t, admin, nodes)
	return &cluster{s: s, admin: admin}
}

// session is a client connected to a bridge through in-memory transports.
type session struct {
	t   *testing.T
	cs  *sdk.ClientSession
	reg *prometheus.Registry
	cfg mcp.Config
}

type sessionOpts struct {
	cfg      *mcp.Config
	client   *sdk.ClientOptions
	protocol string
}

// connect starts a bridge acting with the admin's identity (as over
// stdio) and connects a client to it.
func (c *cluster) connect(t *testing.T, o sessionOpts) *session {
	t.Helper()
	cfg := mcp.DefaultConfig()
	if o.cfg != nil {
		cfg = *o.cfg
	}
	conns, err := mcp.NewConnections(c.s.Admin, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conns.Close)
	reg := prometheus.NewRegistry()
	b, err := mcp.New(cfg, conns, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	ct, st := sdk.NewInMemoryTransports()
	ctx := context.Background()
	ss, err := b.Server().Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ss.Close() })
	cl := sdk.NewClient(&sdk.Implementation{Name: "skiff-test", Version: "v0"}, o.client)
	cs, err := cl.Connect(ctx, ct, &sdk.ClientSessionOptions{ProtocolVersion: o.protocol})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return &session{t: t, cs: cs, reg: reg, cfg: cfg}
}

// call calls a tool; a tool error is returned as err with its text.
func (s *session) call(name string, args any) (map[string]any, error) {
	s.t.Helper()
	res, err := s.cs.CallTool(context.Background(), &sdk.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		return nil, err
	}
	s.checkSize(name, res)
	if res.IsError {
		return nil, toolError(textOf(res))
	}
	out, _ := res.StructuredContent.(map[string]any)
	if out == nil {
		s.t.Fatalf("%s: no structured content: %s", name, textOf(res))
	}
	return out, nil
}

// must calls a tool that must succeed.
func (s *session) must(name string, args any) map[string]any {
	s.t.Helper()
	out, err := s.call(name, args)
	if err != nil {
		s.t.Fatalf("%s %v: %v", name, args, err)
	}
	return out
}

// checkSize fails the test when a result, as sent, is over the cap.
func (s *session) checkSize(name string, res *sdk.CallToolResult) {
	s.t.Helper()
	data, err := json.Marshal(res)
	if err != nil {
		s.t.Fatal(err)
	}
	if len(data) > s.cfg.MaxResponseBytes {
		s.t.Fatalf("%s: result of %d bytes, over the cap of %d", name, len(data), s.cfg.MaxResponseBytes)
	}
}

type toolError string

func (e toolError) Error() string { return string(e) }

func textOf(res *sdk.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if tc, ok := c.(*sdk.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, "\n")
}

// items is a page's items.
func items(out map[string]any) []map[string]any {
	var list []map[string]any
	raw, _ := out["items"].([]any)
	for _, it := range raw {
		list = append(list, it.(map[string]any))
	}
	return list
}

func wantError(t *testing.T, err error, substrs ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one saying %q", substrs)
	}
	for _, s := range substrs {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("error %q does not say %q", err, s)
		}
	}
}
