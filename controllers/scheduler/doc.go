// Package scheduler places pending Instances on Nodes: filters rule nodes
// out (cheapest first), scores rank the rest, and the highest score wins
// with a random tie-break. The functions here are pure: they read a
// snapshot of the cluster and decide, so the controller and `skiff plan`
// run the same code path.
package scheduler
