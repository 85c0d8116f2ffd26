// Package serverlist keeps the list of the cluster's live API servers, as
// kube-apiserver's lease endpoint reconciler keeps the endpoints of the
// kubernetes Service: each server renews a Lease of its own, and the list
// is the URLs of the Leases that have not expired.
//
// A Lease is skiff-system/apiserver-NAME (LeaseName), labelled
// skiff.dev/apiserver=true, with the server's HTTPS URL in the
// skiff.dev/url annotation. Its server renews it every RenewInterval for
// LeaseDuration, and deletes it when it stops cleanly, so that the list
// drops it at once; a server that dies drops out when its Lease expires.
// Remove deletes the Lease of a server removed from the cluster.
//
// Handler serves the list at skiffv1alpha1.ServersPath, where clients
// (agents, the CLI) learn which servers they may fail over to:
//
//	c, _ := client.New(adminConfig, client.Options{}) // knows coordination.k8s.io/v1
//	lease, err := serverlist.NewLease(c, "server-1", "https://10.0.0.1:6443")
//	srv.AddHandler(skiffv1alpha1.ServersPath, serverlist.NewHandler(c))
//	go lease.Run(ctx) // renews until ctx ends, then deletes the Lease
//
// The liveness of a Lease is judged on the reader's clock against the
// renewTime written on the renewer's: the servers' clocks must agree to
// well within LeaseDuration - RenewInterval.
package serverlist
