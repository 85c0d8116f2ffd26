// Package nodeagent is skiff's node agent (`skiff agent`), its kubelet.
//
// This first part joins the cluster and keeps the Node current: the agent
// holds an Ed25519 key in its data directory, registers its Node with the
// join token once (the token also pins the apiserver's certificate), and
// from then on authenticates with its key as skiff:node:NAME. It reports
// the machine's capacity and software in the Node's status and renews its
// Lease in the skiff-node-lease namespace. Running Instances through an OCI
// runtime comes next.
//
//	a, err := nodeagent.New(cfg)
//	err = a.Run(ctx) // blocks until ctx ends
package nodeagent
