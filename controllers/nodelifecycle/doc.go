// Package nodelifecycle decides whether Nodes are alive and acts when one
// is not: a Node that has not been seen for the grace period gets
// Ready=Unknown, phase NotReady and the NoExecute taint
// node.skiff.dev/unreachable, and the Instances bound to it are marked
// Failed with reason NodeLost once their toleration of that taint runs out
// (at once without one, after tolerationSeconds with one, never with one
// that sets no seconds). The workload controller replaces them; when the
// node comes back, the taint goes, its agent writes Ready=True again and
// stops what was replaced meanwhile.
//
// Whether a node was seen comes from a Liveness: Leases reads the Leases
// the agents renew, and Newest combines it with other signals (gossip) so
// that any one of them keeps a node alive.
//
//	leases := nodelifecycle.NewLeases(mgr.GetClient())
//	c := &nodelifecycle.Controller{Client: mgr.GetClient(), Liveness: leases, Config: nodelifecycle.DefaultConfig()}
//	err := c.SetupWithManager(mgr)
//
// The decisions (lost yet? which Instances go when?) are pure functions of
// the Node, its Instances and the time, so they are tested by tables.
package nodelifecycle
