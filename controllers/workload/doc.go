// Package workload is the Workload controller: the seed's reconciliation
// loop made literal, one file per phase.
//
//   - SENSE (sense.go) reads one snapshot from the cache: the Workload, the
//     Instances it owns and the Nodes.
//   - COMPARE (compare.go) sorts the owned Instances against the desired
//     state: up to date, out of date, finished, surplus; and rates the drift
//     by magnitude and urgency.
//   - PLAN (plan.go) is a pure function from a comparison to ordered actions
//     with preconditions, honouring the rollout strategy's budgets. `skiff
//     plan` runs the same function against the live cluster.
//   - ACTUATE (actuate.go) carries the actions out with bounded concurrency
//     and retries, records Events and writes the status (status.go).
//
// Instances are named <workload>-<revision>-<random>, carry the revision
// label, and are owned (controller, blockOwnerDeletion) by their Workload.
package workload
