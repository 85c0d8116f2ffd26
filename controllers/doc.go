// Package controllers runs skiff's controllers in one controller-runtime
// manager: the workload controller, the scheduler, node lifecycle, node
// IPAM and the garbage collector. `skiff server` runs it in-process;
// `skiff controllers` runs it alone against a server, with leader election
// on a Lease in skiff-system so that several may stand by.
package controllers
