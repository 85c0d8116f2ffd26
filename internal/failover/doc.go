// Package failover lets a client of several API servers of one cluster go
// on when one of them stops: a Servers holds their URLs and the one in
// use, its Wrap sends each request to that one and moves on when it
// cannot be reached (resending the request, which it never reached) or
// answers 500, 503 or 504 (the next request goes elsewhere), and a Refresher keeps the list current from the API
// (ServersPath).
//
// The servers of a cluster share one serving certificate, which names
// only the first server's address; Apply has a client pin that
// certificate by identity.ServingName whichever server it dials.
//
//	servers, err := failover.New([]string{"https://10.0.0.1:6443", "https://10.0.0.2:6443"})
//	cfg := &rest.Config{TLSClientConfig: rest.TLSClientConfig{CAData: servingCert}}
//	servers.Apply(cfg)
//	httpClient, err := rest.HTTPClientFor(cfg)
//	refresher := &failover.Refresher{Servers: servers, Client: httpClient}
//	go refresher.Start(ctx) // or add it to a controller-runtime manager
package failover
