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
// trusted as (impersonation.go). Nodes are held to their own objects
// (nodeauthz.go, noderestriction.go) and see no other Node's key
// (redact.go); the join token only registers. Client certificates last a
// year and are renewed in files the long-running clients re-read (pki.go).
// The API server reaches agents (logs, metrics) with an identity of its
// own, whose key agents fetch at APIServerClientKeyPath.
//
// In front of the library's chain: probes are served directly, whatever
// credentials they carry (probes.go); failed join tokens are limited per
// source address (tokenguess.go). Behind authorization, requests take a
// seat in a fair queue per identity instead of the library's global
// in-flight limit (fairness.go). New locks the data directory first
// (datadirlock.go). Use it as:
//
//	cfg := apiserver.DefaultConfig()
//	cfg.DataDir = dir
//	srv, err := apiserver.New(cfg)
//	err = srv.Run(ctx) // blocks until ctx ends, then shuts down in order
package apiserver
