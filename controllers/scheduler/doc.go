// Package scheduler places pending Instances on Nodes: filters rule nodes
// out (cheapest first), scores rank the rest, and the highest score wins
// with a random tie-break. An Instance that fits nowhere may preempt: on
// the one node where evicting the fewest and least important Instances of
// lower priority makes room, they are evicted and the node is nominated for
// it, and held for it (Reserve) until they are gone. The functions here are
// pure: they read a snapshot of the cluster and decide, so the controller
// and `skiff plan` run the same code path.
//
// A decision is a cycle (cycle.go): what every filter and score reads is
// worked out once per Instance, resources are int64 milli-units
// (amounts.go), and topology spread and instance affinity read per-domain
// counts from the snapshot's domain index (domains.go), which
// NodeInfo.Add keeps current. The controller's Cache is fed the
// informers' events and rebuilds only the nodes they, or its assumed
// placements, changed (cluster.go); Snapshot builds one from lists.
// BenchmarkPlacement measures placements/s in the shape of Nomad's
// scheduler benchmark.
package scheduler
