package apiserver

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
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
	token, err := os.ReadFile(ts.srv.dir.file(JoinTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	cfg := rest.AnonymousClientConfig(ts.cfg)
	cfg.BearerToken = strings.TrimSpace(string(token))
	joiner, err := client.New(cfg, client.Options{Scheme: ts.scheme})
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		label string
		ok    bool
	}{
		{"zone", true},
		{"example.com/rack", true},
		{"kubernetes.io/hostname", true},
		{"topology.kubernetes.io/zone", true},
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
