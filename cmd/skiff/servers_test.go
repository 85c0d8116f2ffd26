package main

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/apiserver"
	"skiff.dev/skiff/apiserver/serverlist"
)

// TestServerListParts: the server serves the list, and the part puts the
// server's URL in it while it runs and takes it out when it stops (before
// the server does).
func TestServerListParts(t *testing.T) {
	cfg := apiserver.DefaultConfig()
	cfg.DataDir, cfg.Listen = t.TempDir(), "127.0.0.1:0"
	srv, err := apiserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	lease, err := serverListParts(srv, "server-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	srvCtx, stopServer := context.WithCancel(context.Background())
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Run(srvCtx) }()
	t.Cleanup(func() { stopServer(); <-srvDone })
	if err := waitReady(srvCtx, srv.URL()); err != nil {
		t.Fatal(err)
	}
	admin, err := srv.AdminConfig()
	if err != nil {
		t.Fatal(err)
	}
	hc, err := rest.HTTPClientFor(admin)
	if err != nil {
		t.Fatal(err)
	}
	servers := func() []string {
		resp, err := hc.Get(srv.URL() + skiffv1alpha1.ServersPath)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var list serverlist.List
		if err := json.NewDecoder(resp.Body).Decode(&list); resp.StatusCode != http.StatusOK || err != nil {
			t.Fatalf("GET %s: %s, %v", skiffv1alpha1.ServersPath, resp.Status, err)
		}
		return list.Servers
	}

	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lease.run(ctx) }()
	for deadline := time.Now().Add(10 * time.Second); !slices.Equal(servers(), []string{srv.URL()}); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("servers %v, want [%s]", servers(), srv.URL())
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("%s: %v", lease.name, err)
	}
	if got := servers(); len(got) != 0 {
		t.Fatalf("after the part stopped: %v, want none", got)
	}
}
