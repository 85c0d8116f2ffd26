package apiserver

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"os"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/identity"
)

// TestJoinTokenLifetimes: a token works until it expires or is revoked,
// and then is refused with a message that says which; the first-start
// token works until revoked, also across a restart; records hold no secret.
func TestJoinTokenLifetimes(t *testing.T) {
	dir := t.TempDir()
	ts := startTestServer(t, dir)
	ctx := context.Background()
	secrets := kubernetes.NewForConfigOrDie(ts.cfg).CoreV1().Secrets(SystemNamespace)
	cert, err := ts.srv.dir.servingCertificate()
	if err != nil {
		t.Fatal(err)
	}
	issue := func(expires time.Time) identity.JoinToken {
		t.Helper()
		tok, err := identity.NewJoinTokenWithID(cert)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := secrets.Create(ctx, JoinTokenRecord(tok, expires, "test"), metav1.CreateOptions{}); err != nil {
			t.Fatalf("record: %v", err)
		}
		return tok
	}
	register := func(tok string) error {
		cfg := rest.AnonymousClientConfig(ts.cfg)
		cfg.BearerToken = tok
		c, err := client.New(cfg, client.Options{Scheme: ts.scheme})
		if err != nil {
			t.Fatal(err)
		}
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		n := &skiffv1alpha1.Node{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "n-"},
			Spec:       skiffv1alpha1.NodeSpec{PublicKey: base64.StdEncoding.EncodeToString(pub)},
		}
		return c.Create(ctx, n)
	}
	revoke := func(id string) {
		t.Helper()
		patch := `{"stringData":{"` + JoinTokenRevokedKey + `":"` + time.Now().UTC().Format(time.RFC3339) + `"}}`
		if _, err := secrets.Patch(ctx, JoinTokenSecretName(id), "application/merge-patch+json", []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatalf("revoke %s: %v", id, err)
		}
	}
	refusedFor := func(err error, why string) bool {
		return apierrors.IsForbidden(err) && strings.Contains(err.Error(), why)
	}

	live := issue(time.Now().Add(time.Hour))
	if err := register(live.String()); err != nil {
		t.Fatalf("a live token: %v", err)
	}
	rec, err := secrets.Get(ctx, JoinTokenSecretName(live.ID), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range rec.Data {
		if strings.Contains(string(v), strings.Split(live.String(), ".")[1]) {
			t.Errorf("record key %s holds the token's secret", k)
		}
	}
	if err := register(issue(time.Now().Add(-time.Second)).String()); !refusedFor(err, "expired at") {
		t.Errorf("an expired token: %v; want forbidden saying it expired", err)
	}
	revoke(live.ID)
	if err := register(live.String()); !refusedFor(err, "revoked") {
		t.Errorf("a revoked token: %v; want forbidden saying it was revoked", err)
	}
	if err := register(strings.Replace(live.String(), live.ID, "zzzzzz", 1)); !apierrors.IsUnauthorized(err) {
		t.Errorf("an unknown token id: %v; want unauthorized", err)
	}

	initial := strings.TrimSpace(readFile(t, ts.srv.dir.file(JoinTokenFile)))
	if err := register(initial); err != nil {
		t.Fatalf("the first-start token: %v", err)
	}
	revoke(identity.InitialJoinTokenID)
	ts.stop()
	ts = startTestServer(t, dir)
	if err := register(initial); !refusedFor(err, "revoked") {
		t.Errorf("the revoked first-start token after a restart: %v; want forbidden", err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
