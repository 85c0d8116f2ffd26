// Package apiserver is skiff's API server: k8s.io/apiserver's generic server
// over etcd (embedded or external), serving skiff.dev/v1alpha1 Workloads,
// Instances and Nodes next to core v1 Namespaces and Events and
// coordination.k8s.io/v1 Leases.
//
// Every resource is described by one Kind entry in the table in kinds.go
// (scope, subresources, table columns, field selectors, validation hooks);
// one generic registry builder (registry.go) turns each entry into storage.
// Adding a kind is its Go types, one entry, and `make generate`.
//
// Clients authenticate with self-signed Ed25519 client certificates, trusted
// by public key (see package identity): the admin's, the MCP bridge's and
// each Node's. The bridge may impersonate key users (identity.KeyUserName),
// which authorization, admission and audit see as whoever the key is
// trusted as (impersonation.go). Use it as:
//
//	cfg := apiserver.DefaultConfig()
//	cfg.DataDir = dir
//	srv, err := apiserver.New(cfg)
//	err = srv.Run(ctx) // blocks until ctx ends, then shuts down in order
package apiserver
