package main

import (
	"context"
	"fmt"

	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/apiserver"
	"skiff.dev/skiff/apiserver/serverlist"
	"skiff.dev/skiff/gossip"
)

// serverListParts puts the API server in the list of live servers: it
// serves the list at skiffv1alpha1.ServersPath, and returns the part that
// renews this server's Lease there, named name (its etcd member name), at
// srv.AdvertisedURL(), with its gossip address (members nil: none). Both
// use the admin identity; the part retries until the server serves. Call
// it before srv.Run (it adds a handler).
//
// The part deletes the Lease when its ctx ends, through this server: that
// succeeds only while the server still serves, so the server must stop
// after the part does; else the Lease expires (serverlist.LeaseDuration).
func serverListParts(srv *apiserver.Server, name string, members *gossip.Membership) (part, error) {
	rc, err := srv.AdminConfig()
	if err != nil {
		return part{}, fmt.Errorf("server list: %w", err)
	}
	// client.New's default scheme knows coordination.k8s.io/v1; its REST
	// mapper asks the server only at the first request.
	c, err := client.New(rc, client.Options{})
	if err != nil {
		return part{}, fmt.Errorf("server list: %w", err)
	}
	lease, err := serverlist.NewLease(c, name, srv.AdvertisedURL())
	if err != nil && !srv.Clustered() {
		// A server alone (a host name that is no Lease name, say) is
		// listed by nobody, and needs not be.
		klog.InfoS("this server is not in the list of servers", "err", err)
		srv.AddHandler(skiffv1alpha1.ServersPath, serverlist.NewHandler(c))
		return part{name: "server lease", run: func(ctx context.Context) error { <-ctx.Done(); return nil }}, nil
	}
	if err != nil {
		return part{}, fmt.Errorf("server list: %w", err)
	}
	if members != nil {
		lease.WithGossip(members.Addr())
	}
	srv.AddHandler(skiffv1alpha1.ServersPath, serverlist.NewHandler(c))
	return part{name: "server lease", run: lease.Run}, nil
}
