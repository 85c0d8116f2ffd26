// Package apiserver is skiff's API server: k8s.io/apiserver's generic server
// over etcd (embedded or external), serving skiff.dev/v1alpha1 Workloads,
// Instances and Nodes next to core v1 Namespaces, Events, Secrets and
// ConfigMaps, coordination.k8s.io/v1 Leases, rbac.authorization.k8s.io/v1
// roles and bindings, and the authorization.k8s.io/v1 reviews.
//
// Every resource is described by one Kind entry in the table in kinds.go,
// configkinds.go and rbackinds.go (scope, subresources, table columns,
// field selectors and the one the watch cache indexes, validation hooks,
// whether it keeps its namespace); one generic registry builder
// (registry.go, build.go) turns each entry into storage. Adding a kind is
// its Go types, one entry, and `make generate`.
// Secrets are encrypted at rest with a key that rotates in place
// (encryption.go).
//
// Clients authenticate with self-signed Ed25519 client certificates or
// signed requests, trusted by public key (see package identity; keyusers.go):
// the admin's, the MCP bridge's, each Node's, and personal keys that an
// RBAC binding names. Authorization is the admins, the node authorizer,
// the bridge's impersonation rule, the join token, then RBAC (package
// rbac, over in-memory mirrors of the roles and bindings: rbacsource.go),
// with escalation refused at admission (rbacadmission.go); access.go wires
// it. The bridge may impersonate key users (identity.KeyUserName), which
// authorization, admission and audit see as whoever the key is
// (impersonation.go). Nodes are held to their own objects and the Secrets
// and ConfigMaps their Instances reference (nodeauthz.go, noderefs.go,
// noderestriction.go) and see no other Node's key (redact.go); join tokens
// only register, and have records with a lifetime (jointokens.go). Client certificates last a
// year and are renewed in files the long-running clients re-read (pki.go).
// The API server reaches agents (logs, metrics) with an identity of its
// own, whose key agents fetch at APIServerClientKeyPath.
//
// In front of the library's chain: probes are served directly, whatever
// credentials they carry (probes.go); failed join tokens are limited per
// source address (tokenguess.go). Behind authorization, requests take a
// seat in a fair queue per identity instead of the library's global
// in-flight limit (fairness.go). The creates of a Workload's Instances
// and of Bindings go to the library's create handler with a field
// manager that does not work out the managed-fields record nothing keeps
// (unrecorded.go). New locks the data directory first (datadirlock.go).
//
// Several servers make a cluster over their embedded etcds (cluster.go,
// clusterjoin.go, etcdpeer.go, clusterreset.go): the first with
// --cluster-init, the others with --join and a server token, which gets
// them the cluster's shared files and an etcd membership (a learner,
// promoted when caught up); peers talk mutual TLS under a cluster peer CA.
//
// Code in the server's process reads its storage through Local (local.go):
// lists and watches of the watch cache, each reader holding its own copies,
// with no HTTP, TLS or JSON; `skiff server` runs its controllers' caches on
// it. Their writes go through the API, in process (InProcessAdminConfig,
// inprocess.go): the server's whole handler chain, called with the admin's
// certificate, without TLS, socket or HTTP/2. A server of an embedded etcd
// calls its KV service in process too (etcdstorage.go): the stores' writes
// are function calls, not gRPC requests over its socket, and so are the
// watch caches' watches of a server's own etcd; reads, leases and the
// watches of a member of a cluster of servers (which need etcd's leader
// check) stay gRPC.
//
// Objects are stored as JSON (storagecodec.go). The storage codec hands
// every decode of what it has lately written (the etcd store's, the watch
// cache's of etcd's event, a re-read) a copy of the object instead of
// decoding the bytes again, and finds a JSON object's kind by scanning
// its top-level keys (jsonkind.go), as the skiff.dev group's request
// decoding does. The watch cache keeps no snapshots for paginated lists: their
// later pages are read from etcd (build.go). The skiff.dev group's JSON
// encodes a list of 256 or more objects on every core, writing the bytes
// the library's streaming encoder would (listencoding.go).
//
// Use it as:
//
//	cfg := apiserver.DefaultConfig()
//	cfg.DataDir = dir
//	srv, err := apiserver.New(cfg)
//	err = srv.Run(ctx) // blocks until ctx ends, then shuts down in order
package apiserver
