package apiserver

import (
	"context"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// The in-process admin client reaches the server without a network: its
// host is unreachable, yet it writes, reads, gets the server's errors and
// watches, as the admin; once the server stops, its requests fail.
func TestInProcessAdminConfigNeedsNoNetwork(t *testing.T) {
	ts := startTestServer(t, t.TempDir())
	cfg := ts.srv.InProcessAdminConfig()
	cfg.Host = "https://192.0.2.1:1" // TEST-NET-1: no route
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: ts.scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	events, err := c.Watch(ctx, &skiffv1alpha1.WorkloadList{}, client.InNamespace("default"))
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	defer events.Stop()
	w := newWorkload("in-process", 2)
	if err := c.Create(ctx, w); err != nil {
		t.Fatalf("create: %v", err)
	}
	if len(w.ManagedFields) == 0 || w.UID == "" {
		t.Fatalf("create answered %+v, want the stored object", w.ObjectMeta)
	}
	select {
	case ev := <-events.ResultChan():
		got, ok := ev.Object.(*skiffv1alpha1.Workload)
		if ev.Type != watch.Added || !ok || got.Name != w.Name {
			t.Fatalf("watch: %s %T, want ADDED of %s", ev.Type, ev.Object, w.Name)
		}
	case <-ctx.Done():
		t.Fatal("no watch event for the create")
	}
	// The admin's own (the stored managed fields name the client), and
	// a refusal comes back as the server's status.
	if w.ManagedFields[0].Manager == "" {
		t.Fatal("no manager recorded for the create")
	}
	var missing skiffv1alpha1.Workload
	if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "absent"}, &missing); !apierrors.IsNotFound(err) {
		t.Fatalf("get of a missing Workload: %v, want NotFound", err)
	}
	bad := newWorkload("in-process", 1)
	if err := c.Create(ctx, bad); !apierrors.IsAlreadyExists(err) {
		t.Fatalf("second create: %v, want AlreadyExists", err)
	}
	if err := c.Delete(ctx, w); err != nil {
		t.Fatalf("delete: %v", err)
	}

	events.Stop()
	ts.stop()
	err = c.Create(ctx, newWorkload("after-stop", 1))
	if err == nil || !strings.Contains(err.Error(), "not serving") {
		t.Fatalf("create after the server stopped: %v, want not serving", err)
	}
}
