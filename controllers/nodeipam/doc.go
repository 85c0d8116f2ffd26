// Package nodeipam gives each Node a subnet of the cluster CIDR for its
// Instances' addresses, recorded in the Node's spec.instanceCIDR. The
// control plane allocates, so that no two Nodes ever hold the same subnet
// and a Node's agent needs no say in it; a subnet comes free when its Node
// is deleted.
//
// An Allocator is the bookkeeping, a bitmap over the cluster CIDR's
// subnets that hands out the lowest free one; the Controller rebuilds it
// from every Node in the informer cache before its first allocation (so
// a restart or a new leader never hands out a subnet a Node holds), then
// keeps it current as Nodes come and go. A subnet an admin wrote into a
// Node is left alone and, if it lies in the cluster CIDR, counted as used.
//
//	c := &nodeipam.Controller{Client: mgr.GetClient(), Config: nodeipam.DefaultConfig()}
//	err := c.SetupWithManager(mgr)
//
// When the cluster CIDR is full, a Node waits without one, with a Warning
// Event CIDRNotAvailable, until a subnet comes free.
package nodeipam
