// Package nodelifecycle decides whether Nodes are alive from two signals,
// the Lease each agent renews and the control plane's view of the gossip
// cluster, and acts when one is not:
//
//   - gossip says dead (or left) and the Lease was not renewed since: the
//     node is dead. It gets the NoExecute taint node.skiff.dev/dead, and
//     its Instances that do not tolerate it (none do by default) are
//     marked Failed with reason NodeLost at once.
//   - the Lease is stale (not renewed for max(grace period, its
//     leaseDurationSeconds)) and gossip does not say dead: the node may
//     only be cut off from the control plane. It gets Ready=Unknown, phase
//     NotReady and the NoExecute taint node.skiff.dev/unreachable, which
//     Instances tolerate for 300 s by default.
//   - gossip says dead but the agent still renews: MemberAlive=False and
//     an Event; the node stays Ready.
//   - the Node was deleted: once it has been missing for 10 s, the
//     Instances still bound to it are marked Failed/NodeLost, so that they
//     are replaced and an agent registering the name again does not take
//     them over, and they lose the agent finalizer the bind set (no agent
//     will stop them), so that they can be deleted.
//
// On a cut-off or dead node, an Instance being deleted that the agent
// never accepted (no start time, no container status) loses the agent
// finalizer too: nothing else would let it go. Instances the agent did
// accept keep it until the agent comes back or the Node is deleted, as
// Pods on a lost kubelet do.
//
// The workload controller replaces lost Instances; when the node comes
// back, the taints go, its agent writes Ready=True again and stops what
// was replaced meanwhile. The controller also writes status.gossip and
// the MemberAlive condition, and records NodeJoined, NodeSuspect,
// NodeDead, NodeRecovered and NodeLeft Events.
//
//	leases := nodelifecycle.NewLeases(mgr.GetClient())
//	c := &nodelifecycle.Controller{Client: mgr.GetClient(), Liveness: leases, Members: membership, Config: nodelifecycle.DefaultConfig()}
//	err := c.SetupWithManager(mgr)
//
// The decisions (judge: healthy, cut off or dead? which Instances go
// when?) are pure functions of the signals and the time, so they are
// tested by tables.
package nodelifecycle
