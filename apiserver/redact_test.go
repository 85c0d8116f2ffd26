package apiserver

import (
	"context"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/identity"
)

// TestNodesSeeNoOtherNodesKeys: through get, list and watch, a node sees
// its own public key and no other Node's; an admin sees them all.
func TestNodesSeeNoOtherNodesKeys(t *testing.T) {
	ts := startTestServer(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ids := map[string]*identity.Identity{}
	for _, name := range []string{"a", "b"} {
		id, err := identity.New()
		if err != nil {
			t.Fatal(err)
		}
		ids[name] = id
		n := &skiffv1alpha1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: skiffv1alpha1.NodeSpec{PublicKey: id.PublicKeyString()}}
		if err := ts.client.Create(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	certPEM, _ := ids["a"].ClientCertificate(skiffv1alpha1.NodeUserPrefix+"a", time.Now())
	keyPEM, _ := ids["a"].KeyPEM()
	cfg := rest.AnonymousClientConfig(ts.cfg)
	cfg.CertData, cfg.KeyData = certPEM, keyPEM
	asA, err := client.NewWithWatch(cfg, client.Options{Scheme: ts.scheme})
	if err != nil {
		t.Fatal(err)
	}

	var b skiffv1alpha1.Node
	for {
		err := asA.Get(ctx, client.ObjectKey{Name: "b"}, &b)
		if err == nil {
			break
		}
		if !apierrors.IsUnauthorized(err) || ctx.Err() != nil {
			t.Fatalf("node a gets node b: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // until the key index trusts a
	}
	if b.Spec.PublicKey != "" {
		t.Errorf("node a got node b's key %q", b.Spec.PublicKey)
	}
	var a skiffv1alpha1.Node
	if err := asA.Get(ctx, client.ObjectKey{Name: "a"}, &a); err != nil || a.Spec.PublicKey != ids["a"].PublicKeyString() {
		t.Errorf("node a gets itself: key %q, %v; want its own key", a.Spec.PublicKey, err)
	}

	keys := func(c client.Client) map[string]string {
		var list skiffv1alpha1.NodeList
		if err := c.List(ctx, &list); err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, n := range list.Items {
			out[n.Name] = n.Spec.PublicKey
		}
		return out
	}
	if got := keys(asA); got["a"] != ids["a"].PublicKeyString() || got["b"] != "" {
		t.Errorf("node a lists keys %v, want only its own", got)
	}
	if got := keys(ts.client); got["a"] == "" || got["b"] != ids["b"].PublicKeyString() {
		t.Errorf("the admin lists keys %v, want both (redaction must not touch the store's objects)", got)
	}

	w, err := asA.Watch(ctx, &skiffv1alpha1.NodeList{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	// The first events (Added, from the list) and a later change (Modified,
	// from the watch cache) alike.
	seen := map[string]bool{}
	modified := false
	for !modified {
		select {
		case e := <-w.ResultChan():
			n, ok := e.Object.(*skiffv1alpha1.Node)
			if !ok || e.Type != watch.Added && e.Type != watch.Modified {
				t.Fatalf("watch event %s %T", e.Type, e.Object)
			}
			if n.Name == "b" && n.Spec.PublicKey != "" {
				t.Errorf("node a watched node b's key in a %s event", e.Type)
			}
			if n.Name == "a" && n.Spec.PublicKey == "" {
				t.Errorf("node a watched itself without its key in a %s event", e.Type)
			}
			modified = e.Type == watch.Modified && n.Name == "b"
			if seen[n.Name] = true; len(seen) == 2 && e.Type == watch.Added {
				var changed skiffv1alpha1.Node
				if err := ts.client.Get(ctx, client.ObjectKey{Name: "b"}, &changed); err != nil {
					t.Fatal(err)
				}
				changed.Labels = map[string]string{"changed": "yes"}
				if err := ts.client.Update(ctx, &changed); err != nil {
					t.Fatal(err)
				}
			}
		case <-ctx.Done():
			t.Fatalf("watch: saw %v, no change of node b", seen)
		}
	}
}
