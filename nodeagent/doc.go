// Package nodeagent is skiff's node agent (`skiff agent`), its kubelet.
//
// The agent holds an Ed25519 key in its data directory, registers its Node
// with the join token once (the token also pins the apiserver's
// certificate), and from then on authenticates with its key as
// skiff:node:NAME (a year-long certificate in node.crt, which it renews).
// It serves logs and metrics only to the API server's own client key,
// fetched when it joins. A join attempt that gets no answer within 30 s is
// tried again, and the node's own requests (its Lease, its status) are
// each bounded as long. Given several API servers (a cluster of them),
// it fails over among them (package internal/failover) and keeps the list
// it learns from the API in its data directory (servers.go). It reports
// the machine's capacity and software in the Node's status and renews its Lease in the skiff-node-lease namespace:
// every 40 s while its gossip is healthy, every 5 s otherwise. It is a
// member of the gossip cluster (package gossip; keys from the API server),
// and fences itself (kills its containers, starts nothing) when it reaches
// neither the API server nor any peer for --fence-after. Each of these is
// a Runnable of one controller-runtime manager, beside the Instance
// controller and the agent's HTTPS endpoint. It runs the Instances bound to its Node through an OCI runtime (package
// runtime; bundle builds their specs, image their root file systems,
// network their addresses), restarts them as their restart policy says,
// serves their logs, and re-adopts running containers after a restart.
// A stop does not hold a worker for its grace period (stop.go): SIGTERM,
// then the Instance comes back until its containers end or SIGKILL is due.
// A failed pull is a Warning Event as well as the container's waiting
// reason (events.go). A container's environment takes Secrets' and
// ConfigMaps' keys (env valueFrom, envFrom) as the kubelet resolves them,
// read by name at each start; while a required one is missing the
// container waits in CreateContainerConfigError (envfrom.go). An
// Instance's volumes (volumes.go) are made before its containers start,
// kept over their restarts and removed with it: emptyDirs (a tmpfs for
// medium Memory; sizeLimit enforced by eviction), hostPaths where
// --allow-host-paths allows, and ConfigMaps and Secrets projected
// atomically (package projection; Secrets on a tmpfs), read again every
// 30 s.
//
//	a, err := nodeagent.New(cfg)
//	err = a.Run(ctx) // blocks until ctx ends
package nodeagent
