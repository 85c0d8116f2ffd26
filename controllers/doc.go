// Package controllers runs skiff's controllers in one controller-runtime
// manager: the workload controller, the scheduler, node lifecycle, node
// IPAM and the garbage collector. `skiff server` runs it in-process, its
// caches listing and watching the server's own storage (ReadFrom: no HTTP,
// TLS or JSON between them) while every write goes through the API, by
// function call into the server's handler chain (no TLS or socket);
// `skiff controllers` runs it alone against a server, reading through the
// API too, with leader election on a Lease in skiff-system so that several
// may stand by.
package controllers
