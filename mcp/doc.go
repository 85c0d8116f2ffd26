// Package mcp is skiff's Model Context Protocol bridge: `skiff mcp`.
//
// Every tool is a read or a write through the API server, so validation,
// authorization, audit and watches apply to what an AI agent does exactly
// as to kubectl. A Bridge holds the tools, resources and prompts; it
// reaches the API server through Connections, which act with one
// kubeconfig's identity (stdio) or as each HTTP caller by impersonating
// the caller's key (see apiserver.MCPUser).
//
// Answers are sized for a model's context: lists are paged with the API
// server's own continue tokens and summarized one line an object, every
// response is capped (Config.MaxResponseBytes) and says when and where it
// cut, and text that comes from containers or events is marked as
// untrusted data. Destructive tools carry annotations, can be hidden
// (Config.DisableDestructive, Config.ReadOnly) and are confirmed by
// elicitation, or by confirm: true where the client cannot elicit.
//
//	b, err := mcp.New(mcp.DefaultConfig(), conns, prometheus.NewRegistry())
//	err = b.Server().Run(ctx, &sdk.StdioTransport{})
package mcp
