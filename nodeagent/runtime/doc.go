// Package runtime is the node agent's container runtime interface, one Go
// interface that every implementation satisfies: sim (in memory, for scale
// tests) now, oci (youki, runc, crun through their CLI) next. Container
// lifecycle is a state machine, created -> running -> stopped -> deleted,
// and an implementation rejects a call that does not fit the state with
// ErrBadState. The conformance suite in runtimetest runs against each.
package runtime
