package main

import (
	"fmt"
	"os"
	"path/filepath"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"skiff.dev/skiff/apiserver"
	"skiff.dev/skiff/internal/xdg"
	"skiff.dev/skiff/mcp"
)

// newMCPCommand is `skiff mcp`: the MCP bridge, over stdio (default) or
// streamable HTTP with TLS.
func newMCPCommand() *cobra.Command {
	var flags clientFlags
	cfg := mcp.DefaultConfig()
	httpCfg := mcp.HTTPConfig{}
	dataDir := xdg.DataDir("mcp")
	cmd := &cobra.Command{
		Use:   "mcp",
		Short: "Serve the Model Context Protocol: AI agents drive the cluster through tools that are API reads and writes",
		Long: "skiff mcp speaks MCP over stdio (default), acting with the kubeconfig's identity, or over\n" +
			"streamable HTTP with TLS (--http ADDR, path /mcp), where every caller presents its own Ed25519\n" +
			"client certificate and the bridge acts as that caller (impersonating its key through the API\n" +
			"server with the bridge's identity, <server data-dir>/mcp.kubeconfig by default).",
		Example: "  skiff mcp --kubeconfig /var/lib/skiff/server/admin.kubeconfig\n" +
			"  skiff mcp --http 127.0.0.1:8090 --read-only",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			over := httpCfg.Listen != ""
			if (httpCfg.CertFile == "") != (httpCfg.KeyFile == "") {
				return fmt.Errorf("--tls-cert-file and --tls-key-file go together")
			}
			if over && flags.kubeconfig == "" && os.Getenv("KUBECONFIG") == "" {
				flags.kubeconfig = filepath.Join(apiserver.DefaultDataDir(), apiserver.MCPKubeconfigFile)
			}
			rc, ns, err := flags.config()
			if err != nil {
				return err
			}
			cfg.Namespace = ns
			cfg.Stateless = httpCfg.Stateless
			conns, err := mcp.NewConnections(rc, over)
			if err != nil {
				return err
			}
			defer conns.Close()
			reg := prometheus.NewRegistry()
			b, err := mcp.New(cfg, conns, reg)
			if err != nil {
				return err
			}
			defer b.Close()
			if !over {
				return b.Server().Run(cmd.Context(), &sdk.StdioTransport{})
			}
			if httpCfg.CertFile == "" {
				httpCfg.CertFile, httpCfg.KeyFile = filepath.Join(dataDir, "serving.crt"), filepath.Join(dataDir, "serving.key")
			}
			srv, err := mcp.NewHTTPServer(httpCfg, b, reg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "skiff mcp serving %s (serving certificate %s)\n", srv.URL(), httpCfg.CertFile)
			return srv.Run(cmd.Context())
		},
	}
	flags.add(cmd)
	fs := cmd.Flags()
	fs.StringVar(&httpCfg.Listen, "http", "", "serve streamable HTTP with TLS on this host:port (path /mcp) instead of stdio")
	fs.BoolVar(&httpCfg.Stateless, "stateless", false, "HTTP without sessions: accepts protocol 2026-07-28, no subscriptions or elicitation for older clients")
	fs.StringVar(&dataDir, "data-dir", dataDir, "where the HTTP serving certificate is made when --tls-cert-file is not given")
	fs.StringVar(&httpCfg.CertFile, "tls-cert-file", "", "HTTP serving certificate (PEM); made self-signed when missing")
	fs.StringVar(&httpCfg.KeyFile, "tls-key-file", "", "HTTP serving key (PEM)")
	fs.BoolVar(&cfg.ReadOnly, "read-only", false, "list and allow only tools that read")
	fs.BoolVar(&cfg.DisableDestructive, "disable-destructive", false, "hide delete_workload and refuse scaling to zero")
	fs.StringSliceVar(&cfg.DenyKinds, "deny-kinds", nil, "kinds no tool reads or writes, e.g. Node,Event")
	fs.IntVar(&cfg.MaxResponseBytes, "max-response-bytes", cfg.MaxResponseBytes, "cap on every tool result, in bytes")
	return cmd
}
