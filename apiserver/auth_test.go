package apiserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/apiserver/rbac"
	"skiff.dev/skiff/identity"
)

func certOf(t *testing.T, id *identity.Identity, now time.Time) *x509.Certificate {
	t.Helper()
	p, err := id.ClientCertificate("someone", now)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(p)
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestKeyAuthenticator(t *testing.T) {
	now := time.Now()
	admin, _ := identity.New()
	stranger, _ := identity.New()
	trust := identity.NewTrust()
	trust.Add(admin.Public(), identity.Principal{Name: AdminUser, Groups: []string{user.SystemPrivilegedGroup}})
	clock := now
	join := identity.JoinToken{CAHash: make([]byte, 32), Secret: []byte("0123456789abcdef0123")}
	withID := identity.JoinToken{CAHash: make([]byte, 32), ID: "abc123", Secret: []byte("fedcba9876543210fedc")}
	expired := identity.JoinToken{CAHash: make([]byte, 32), ID: "old000", Secret: []byte("fedcba9876543210fedc")}
	revoked := identity.JoinToken{CAHash: make([]byte, 32), ID: "gone00", Secret: []byte("fedcba9876543210fedc")}
	revokedRecord := JoinTokenRecord(revoked, time.Time{}, "")
	revokedRecord.Data[JoinTokenRevokedKey] = []byte(now.Format(time.RFC3339))
	server := identity.JoinToken{CAHash: make([]byte, 32), ID: "srv000", Secret: []byte("fedcba9876543210fedc")}
	serverRecord := JoinTokenRecord(server, time.Time{}, "")
	serverRecord.Data[JoinTokenRoleKey] = []byte(TokenRoleServer)
	records := recordGetter{
		JoinTokenRecord(join, time.Time{}, ""), JoinTokenRecord(withID, now.Add(time.Hour), ""),
		JoinTokenRecord(expired, now.Add(-time.Second), ""), revokedRecord, serverRecord,
	}
	a := newKeyAuthenticator(keyUsers{trust: trust}, &joinTokens{secrets: records, now: func() time.Time { return clock }}, func() time.Time { return clock })
	wrong := join
	wrong.Secret = []byte("not-the-secret-at-all")
	unknown := withID
	unknown.ID = "zzz999"

	cases := []struct {
		name     string
		path     string
		cert     *x509.Certificate
		bearer   string
		wantOK   bool
		wantUser string
	}{
		{"join token", "/apis/skiff.dev/v1alpha1/nodes", nil, join.String(), true, "skiff:bootstrap"},
		{"wrong join token", "/apis/skiff.dev/v1alpha1/nodes", nil, wrong.String(), false, ""},
		{"join token with an id", "/apis/skiff.dev/v1alpha1/nodes", nil, withID.String(), true, "skiff:bootstrap"},
		{"join token with an unknown id", "/apis/skiff.dev/v1alpha1/nodes", nil, unknown.String(), false, ""},
		// Known but refused: authenticated so that the authorizer says why.
		{"expired join token", "/apis/skiff.dev/v1alpha1/nodes", nil, expired.String(), true, "skiff:bootstrap"},
		{"revoked join token", "/apis/skiff.dev/v1alpha1/nodes", nil, revoked.String(), true, "skiff:bootstrap"},
		{"malformed join token", "/apis/skiff.dev/v1alpha1/nodes", nil, "guess", false, ""},
		// A server token is not a node's: it registers nothing.
		{"server token", "/apis/skiff.dev/v1alpha1/nodes", nil, server.String(), true, ServerJoinerUser},
		{"trusted key", "/api", certOf(t, admin, now), "", true, AdminUser},
		{"trusted key again (cached)", "/api", certOf(t, admin, now), "", true, AdminUser},
		{"untrusted key", "/api", certOf(t, stranger, now), "", false, ""},
		{"no certificate", "/api/v1/namespaces", nil, "", false, ""},
		{"no certificate on a probe", "/readyz", nil, "", true, user.Anonymous},
		{"untrusted key on a probe", "/livez/ping", certOf(t, stranger, now), "", true, user.Anonymous},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "https://skiff"+tc.path, nil)
			req.TLS = &tls.ConnectionState{}
			if tc.cert != nil {
				req.TLS.PeerCertificates = []*x509.Certificate{tc.cert}
			}
			if tc.bearer != "" {
				req.Header.Set("Authorization", "Bearer "+tc.bearer)
			}
			resp, ok, _ := a.AuthenticateRequest(req)
			if ok != tc.wantOK {
				t.Fatalf("authenticated %v, want %v", ok, tc.wantOK)
			}
			if ok && resp.User.GetName() != tc.wantUser {
				t.Fatalf("user %q, want %q", resp.User.GetName(), tc.wantUser)
			}
			if !ok || tc.bearer == "" {
				return
			}
			d, reason, _ := authorize(context.Background(), authorizer.AttributesRecord{
				User: resp.User, Verb: "create", APIGroup: "skiff.dev", Resource: "nodes", ResourceRequest: true,
			}, authzDeps{})
			refused := strings.Contains(tc.name, "expired") || strings.Contains(tc.name, "revoked") || strings.Contains(tc.name, "server")
			if (d == authorizer.DecisionAllow) == refused {
				t.Fatalf("registration decision %v (%s)", d, reason)
			}
			if refused && tc.wantUser != ServerJoinerUser && !strings.Contains(reason, "join token "+strings.Split(tc.bearer, ":")[2][:6]) {
				t.Fatalf("refusal %q does not name the token", reason)
			}
		})
	}

	// A cached verification does not outlive the certificate.
	clock = now.Add(identity.ClientCertValidity + time.Hour)
	req := httptest.NewRequest("GET", "https://skiff/api", nil)
	req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{certOf(t, admin, now)}}
	if _, ok, _ := a.AuthenticateRequest(req); ok {
		t.Fatal("expired certificate accepted from the cache")
	}
}

// recordGetter serves join token records by name.
type recordGetter []*corev1.Secret

func (g recordGetter) Get(_ context.Context, name string, _ *metav1.GetOptions) (runtime.Object, error) {
	for _, s := range g {
		if s.Name == name {
			return s, nil
		}
	}
	return nil, apierrors.NewNotFound(corev1.Resource("secrets"), name)
}

func TestAuthorize(t *testing.T) {
	admin := &user.DefaultInfo{Name: AdminUser, Groups: []string{user.SystemPrivilegedGroup}}
	anon := &user.DefaultInfo{Name: user.Anonymous, Groups: []string{user.AllUnauthenticated}}
	other := &user.DefaultInfo{Name: "skiff:node:n1", Groups: []string{"skiff:nodes", user.AllAuthenticated}}
	person := &user.DefaultInfo{Name: "key:abc", Groups: []string{rbac.KeysGroup, user.AllAuthenticated}}
	joiner := &user.DefaultInfo{Name: skiffv1alpha1.BootstrapUser, Groups: []string{skiffv1alpha1.BootstrappersGroup, user.AllAuthenticated}}
	refused := &user.DefaultInfo{Name: skiffv1alpha1.BootstrapUser, Groups: []string{refusedTokensGroup}}
	// Even should something add system:authenticated to it.
	refusedAuthenticated := &user.DefaultInfo{Name: skiffv1alpha1.BootstrapUser, Groups: []string{refusedTokensGroup, user.AllAuthenticated}}
	servers := skiffv1alpha1.ServersPath
	serverJoiner := &user.DefaultInfo{Name: ServerJoinerUser, Groups: []string{ServerJoinerGroup, user.AllAuthenticated}}
	cases := []struct {
		name string
		attr authorizer.AttributesRecord
		want authorizer.Decision
	}{
		{"admin writes", authorizer.AttributesRecord{User: admin, Verb: "create", Resource: "workloads", ResourceRequest: true}, authorizer.DecisionAllow},
		{"anonymous probe", authorizer.AttributesRecord{User: anon, Verb: "get", Path: "/readyz"}, authorizer.DecisionAllow},
		{"anonymous discovery", authorizer.AttributesRecord{User: anon, Verb: "get", Path: "/apis"}, authorizer.DecisionDeny},
		{"anonymous resource", authorizer.AttributesRecord{User: anon, Verb: "list", Resource: "workloads", ResourceRequest: true}, authorizer.DecisionDeny},
		{"other user discovery", authorizer.AttributesRecord{User: other, Verb: "get", Path: "/openapi/v3"}, authorizer.DecisionAllow},
		{"other user resource", authorizer.AttributesRecord{User: other, Verb: "delete", Resource: "nodes", ResourceRequest: true}, authorizer.DecisionDeny},
		{"other user metrics", authorizer.AttributesRecord{User: other, Verb: "get", Path: "/metrics"}, authorizer.DecisionDeny},
		{"node lists servers", authorizer.AttributesRecord{User: other, Verb: "get", Path: servers}, authorizer.DecisionAllow},
		{"key user lists servers", authorizer.AttributesRecord{User: person, Verb: "get", Path: servers}, authorizer.DecisionAllow},
		{"join token lists servers", authorizer.AttributesRecord{User: joiner, Verb: "get", Path: servers}, authorizer.DecisionAllow},
		{"admin lists servers", authorizer.AttributesRecord{User: admin, Verb: "get", Path: servers}, authorizer.DecisionAllow},
		{"anonymous lists servers", authorizer.AttributesRecord{User: anon, Verb: "get", Path: servers}, authorizer.DecisionDeny},
		{"refused token lists servers", authorizer.AttributesRecord{User: refused, Verb: "get", Path: servers}, authorizer.DecisionDeny},
		{"refused token, authenticated, lists servers", authorizer.AttributesRecord{User: refusedAuthenticated, Verb: "get", Path: servers}, authorizer.DecisionDeny},
		{"node posts servers", authorizer.AttributesRecord{User: other, Verb: "post", Path: servers}, authorizer.DecisionDeny},
		{"key user deletes servers", authorizer.AttributesRecord{User: person, Verb: "delete", Path: servers}, authorizer.DecisionDeny},
		{"node below servers", authorizer.AttributesRecord{User: other, Verb: "get", Path: servers + "/x"}, authorizer.DecisionDeny},
		{"server token joins", authorizer.AttributesRecord{User: serverJoiner, Verb: "post", Path: ClusterJoinPath}, authorizer.DecisionAllow},
		{"server token lists members", authorizer.AttributesRecord{User: serverJoiner, Verb: "get", Path: ClusterMembersPath}, authorizer.DecisionDeny},
		{"server token registers a node", authorizer.AttributesRecord{User: serverJoiner, Verb: "create", APIGroup: "skiff.dev", Resource: "nodes", ResourceRequest: true}, authorizer.DecisionDeny},
		{"server token reads discovery", authorizer.AttributesRecord{User: serverJoiner, Verb: "get", Path: "/apis"}, authorizer.DecisionDeny},
		{"node token joins a server", authorizer.AttributesRecord{User: joiner, Verb: "post", Path: ClusterJoinPath}, authorizer.DecisionDeny},
		{"node removes a server", authorizer.AttributesRecord{User: other, Verb: "delete", Path: ClusterMembersPath + "/s1"}, authorizer.DecisionDeny},
		{"key user lists members", authorizer.AttributesRecord{User: person, Verb: "get", Path: ClusterMembersPath}, authorizer.DecisionDeny},
		{"admin removes a server", authorizer.AttributesRecord{User: admin, Verb: "delete", Path: ClusterMembersPath + "/s1"}, authorizer.DecisionAllow},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, reason, err := authorize(context.Background(), tc.attr, authzDeps{})
			if err != nil || got != tc.want {
				t.Fatalf("decision %v (%s, %v), want %v", got, reason, err, tc.want)
			}
		})
	}
}
