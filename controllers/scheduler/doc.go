// Package scheduler places pending Instances on Nodes: filters rule nodes
// out (cheapest first), scores rank the rest, and the highest score wins
// with a random tie-break. An Instance that fits nowhere may preempt: on
// the one node where evicting the fewest and least important Instances of
// lower priority makes room, they are evicted and the node is nominated for
// it, and held for it (Reserve) until they are gone. The functions here are
// pure: they read a snapshot of the cluster and decide, so the controller
// and `skiff plan` run the same code path.
package scheduler
