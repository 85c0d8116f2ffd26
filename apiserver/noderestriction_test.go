package apiserver

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// TestJoinTokenLabels: the join token registers a Node with the labels
// of its machine, never with labels that admins and schedulers trust.
func TestJoinTokenLabels(t *testing.T) {
	ts := startTestServer(t, t.TempDir())
	joiner := joinerClient(t, ts)
	for i, tc := range []struct {
		label string
		ok    bool
	}{
		{"zone", true},
		{"example.com/rack", true},
		{"kubernetes.io/hostname", true},
		{"kubernetes.io/os", true},
		{"kubernetes.io/arch", true},
		{"topology.kubernetes.io/zone", true},
		{"topology.kubernetes.io/region", true},
		{"node.kubernetes.io/instance-type", true},
		{"node-role.kubernetes.io/control-plane", false},
		{"kubernetes.io/role", false},
		{"skiff.dev/trusted", false},
		{"node.skiff.dev/dedicated", false},
		{"sub.k8s.io/x", false},
	} {
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		node := &skiffv1alpha1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: "n" + string(rune('a'+i)), Labels: map[string]string{tc.label: "x"}},
			Spec:       skiffv1alpha1.NodeSpec{PublicKey: base64.StdEncoding.EncodeToString(pub)},
		}
		err := joiner.Create(context.Background(), node)
		switch {
		case tc.ok && err != nil:
			t.Errorf("label %s: %v", tc.label, err)
		case !tc.ok && (!apierrors.IsForbidden(err) || !strings.Contains(err.Error(), tc.label)):
			t.Errorf("label %s: %v, want Forbidden naming the label", tc.label, err)
		}
	}
}

// TestOneKeyRegistersOneNode: registrations of one key under several
// names at the same moment, before the trust has learnt any of them:
// exactly one succeeds.
func TestOneKeyRegistersOneNode(t *testing.T) {
	ts := startTestServer(t, t.TempDir())
	joiner := joinerClient(t, ts)
	for round := range 5 {
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		key := base64.StdEncoding.EncodeToString(pub)
		const racers = 8
		errs := make(chan error, racers)
		start := make(chan struct{})
		for i := range racers {
			go func() {
				<-start
				errs <- joiner.Create(context.Background(), &skiffv1alpha1.Node{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("race%d-%d", round, i)},
					Spec:       skiffv1alpha1.NodeSpec{PublicKey: key},
				})
			}()
		}
		close(start)
		won := 0
		for range racers {
			if err := <-errs; err == nil {
				won++
			} else if !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err) {
				t.Errorf("round %d: a losing registration: %v", round, err)
			}
		}
		if won != 1 {
			t.Errorf("round %d: %d registrations of one key succeeded, want exactly 1", round, won)
		}
	}
}

// joinerClient authenticates with the server's join token, as an agent
// registering.
func joinerClient(t *testing.T, ts *testServer) client.Client {
	t.Helper()
	token, err := os.ReadFile(ts.srv.dir.file(JoinTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	cfg := rest.AnonymousClientConfig(ts.cfg)
	cfg.BearerToken = strings.TrimSpace(string(token))
	cfg.QPS, cfg.Burst = 1000, 1000
	joiner, err := client.New(cfg, client.Options{Scheme: ts.scheme})
	if err != nil {
		t.Fatal(err)
	}
	return joiner
}

// TestRefusedRegistrationHoldsNoKey: a registration refused for what it
// asks (a reserved label) does not keep its key from registering at once
// under another name.
func TestRefusedRegistrationHoldsNoKey(t *testing.T) {
	ts := startTestServer(t, t.TempDir())
	joiner := joinerClient(t, ts)
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	key := base64.StdEncoding.EncodeToString(pub)
	refused := &skiffv1alpha1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "boss", Labels: map[string]string{"node-role.kubernetes.io/control-plane": ""}},
		Spec:       skiffv1alpha1.NodeSpec{PublicKey: key},
	}
	if err := joiner.Create(context.Background(), refused); !apierrors.IsForbidden(err) {
		t.Fatalf("a reserved label: %v, want Forbidden", err)
	}
	plain := &skiffv1alpha1.Node{ObjectMeta: metav1.ObjectMeta{Name: "worker"}, Spec: skiffv1alpha1.NodeSpec{PublicKey: key}}
	if err := joiner.Create(context.Background(), plain); err != nil {
		t.Fatalf("the same key, asking for nothing reserved: %v", err)
	}
}
