// Package gc is skiff's garbage collector: the half of Kubernetes' cascading
// deletion that runs outside the apiserver.
//
// An object lists its owners in metadata.ownerReferences. The collector
// deletes an object once every owner it names is gone (background
// cascade), where an owner that exists under the same name with another
// UID counts as gone. It also finishes the two deletions that the
// apiserver hands to it as finalizers:
//
//   - foregroundDeletion (propagationPolicy=Foreground, kubectl
//     --cascade=foreground): the owner's dependents are deleted, in the
//     foreground too, and the finalizer is removed once no dependent with
//     blockOwnerDeletion remains;
//   - orphan (propagationPolicy=Orphan, kubectl --cascade=orphan): the
//     reference to the owner is removed from each dependent, then the
//     finalizer.
//
// The collector works over a list of kinds (DefaultKinds: Workloads,
// Instances, Nodes and Namespaces), watched as metadata only and indexed
// by owner UID, one controller per kind. An object of a kind outside the
// list is never collected, and keeps the orphan or foregroundDeletion
// finalizer forever if a client asks for those policies.
//
// Wiring:
//
//	c := &gc.Collector{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Kinds: gc.DefaultKinds()}
//	if err := c.SetupWithManager(mgr); err != nil { ... }
package gc
