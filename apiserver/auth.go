package apiserver

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/utils/lru"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/gossip"
	"skiff.dev/skiff/identity"
)

// publicPaths answer without credentials: probes must work before a
// client has an identity.
var publicPaths = []string{"/livez", "/readyz", "/healthz", "/health", "/live", "/ready"}

func isPublicPath(path string) bool {
	for _, p := range publicPaths {
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}

// keyAuthenticator authenticates a request by an Ed25519 key: that of its
// self-signed client certificate, or the one its signature headers were
// made with (identity.RequestVerifier). No CA chain is involved; keyUsers
// says who a key is. Requests without a trusted key are anonymous on
// public paths and unauthenticated (401) elsewhere.
type keyAuthenticator struct {
	keys keyUsers
	// signed verifies signed requests (nil: none are accepted).
	signed *identity.RequestVerifier
	// hosts are the names a signed request may be addressed to (the
	// serving certificate's), so that one made for another server (whose
	// replay cache this one does not share) is refused. Nil: any.
	hosts map[string]bool
	// tokens authenticate a join token as the bootstrap user, which may
	// only register Nodes.
	tokens *joinTokens
	// guesses counts wrong join tokens per source address (nil: none).
	guesses *tokenGuesses
	now     func() time.Time
	// verified caches certificates whose self-signature checked out, by
	// their DER bytes: a connection presents the same certificate on every
	// request, and the signature check is the costly part.
	verified *lru.Cache
}

// verifiedCacheSize holds a certificate for each of several thousand
// clients (about 0.5 KB each): with fewer entries than active nodes, every
// node's request would miss and verify again.
const verifiedCacheSize = 16384

type verifiedCert struct {
	key      ed25519.PublicKey
	notAfter time.Time
}

func newKeyAuthenticator(keys keyUsers, tokens *joinTokens, now func() time.Time) keyAuthenticator {
	return keyAuthenticator{keys: keys, tokens: tokens, now: now, verified: lru.New(verifiedCacheSize)}
}

// refusedTokensGroup is the group of a join token that is known but
// expired or revoked: authenticated, so that the authorizer can say why
// it refuses everything (refusalExtra), where a 401 could not.
const (
	refusedTokensGroup = "skiff:refused-join-tokens"
	refusalExtra       = "skiff.dev/refusal"
	// tokenIDExtra names the join token in the audit log.
	tokenIDExtra = "skiff.dev/join-token-id"
)

func (a keyAuthenticator) AuthenticateRequest(req *http.Request) (*authenticator.Response, bool, error) {
	if a.signed != nil {
		pub, err := a.signed.Verify(req)
		switch {
		case err == nil:
			if err := a.signedRequestBound(req); err != nil {
				return nil, false, err
			}
			u, err := a.keys.userFor(pub)
			if err != nil {
				return nil, false, err
			}
			return &authenticator.Response{User: u}, true, nil
		case !errors.Is(err, identity.ErrNotSigned):
			return nil, false, err
		}
	}
	resp, err := a.fromCertificate(req)
	if err == nil && resp != nil {
		return resp, true, nil
	}
	if token, ok := bearerToken(req); ok {
		presented, err := identity.ParseJoinToken(token)
		role := ""
		if err == nil {
			role, err = a.tokens.checkRole(req.Context(), presented)
		}
		switch {
		case err == nil && role == TokenRoleServer:
			return &authenticator.Response{User: &user.DefaultInfo{
				Name: ServerJoinerUser, Groups: []string{ServerJoinerGroup, user.AllAuthenticated},
				Extra: map[string][]string{tokenIDExtra: {presented.TokenID()}},
			}}, true, nil
		case err == nil:
			return &authenticator.Response{User: &user.DefaultInfo{
				Name: skiffv1alpha1.BootstrapUser, Groups: []string{skiffv1alpha1.BootstrappersGroup, user.AllAuthenticated},
				Extra: map[string][]string{tokenIDExtra: {presented.TokenID()}},
			}}, true, nil
		case errors.Is(err, errUnknownToken) || errors.Is(err, identity.ErrMalformedJoinToken):
			a.guesses.failed(req)
			return nil, false, errUnknownToken
		default:
			return &authenticator.Response{User: &user.DefaultInfo{
				Name: skiffv1alpha1.BootstrapUser, Groups: []string{refusedTokensGroup},
				Extra: map[string][]string{refusalExtra: {err.Error()}, tokenIDExtra: {presented.TokenID()}},
			}}, true, nil
		}
	}
	if isPublicPath(req.URL.Path) {
		return &authenticator.Response{User: &user.DefaultInfo{
			Name: user.Anonymous, Groups: []string{user.AllUnauthenticated},
		}}, true, nil
	}
	return nil, false, err
}

// signedRequestBound refuses a signed request addressed to another host,
// and one that asks to impersonate (those headers are not signed).
func (a keyAuthenticator) signedRequestBound(req *http.Request) error {
	for name := range req.Header {
		if strings.HasPrefix(strings.ToLower(name), "impersonate-") {
			return fmt.Errorf("signed request: %s is not signed and not accepted with a signature", name)
		}
	}
	if a.hosts == nil {
		return nil
	}
	host := req.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if !a.hosts[strings.ToLower(strings.Trim(host, "[]"))] {
		return fmt.Errorf("signed request: addressed to host %q, which is not this server's", req.Host)
	}
	return nil
}

func bearerToken(req *http.Request) (string, bool) {
	token, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	token = strings.TrimSpace(token)
	return token, ok && token != ""
}

func (a keyAuthenticator) fromCertificate(req *http.Request) (*authenticator.Response, error) {
	if req.TLS == nil || len(req.TLS.PeerCertificates) == 0 {
		return nil, nil
	}
	pub, err := a.verify(req.TLS.PeerCertificates[0])
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	// Who a key is, is looked up on every request: removing a key or its
	// last binding takes effect at once.
	u, err := a.keys.userFor(pub)
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	return &authenticator.Response{User: u}, nil
}

func (a keyAuthenticator) verify(cert *x509.Certificate) (ed25519.PublicKey, error) {
	now := a.now()
	if cached, ok := a.verified.Get(string(cert.Raw)); ok {
		if v := cached.(verifiedCert); now.Before(v.notAfter) && !now.Before(cert.NotBefore) {
			return v.key, nil
		}
	}
	pub, err := identity.VerifySelfSigned(cert, now)
	if err != nil {
		return nil, err
	}
	a.verified.Add(string(cert.Raw), verifiedCert{key: pub, notAfter: cert.NotAfter})
	return pub, nil
}

// authzDeps are what authorize reads beyond the request.
type authzDeps struct {
	// roles is RBAC (nil: none).
	roles authorizer.Authorizer
	// refs tells whether an Instance bound to a node references a Secret
	// or ConfigMap (nil: none does).
	refs referenceChecker
	// static tells whether a key is one the server trusts as a principal
	// (the admin, a node, the bridge) rather than a person's (nil: none).
	static func(ed25519.PublicKey) bool
}

// authorize is skiff's authorization: admins (system:masters) may do
// anything; nodes what the node authorizer allows; the MCP bridge may
// impersonate key users and nobody else; a server token joins a server
// (ClusterJoinPath) and does nothing else; the join token registers nodes;
// then RBAC (roles, when set); any authenticated user may read discovery,
// OpenAPI, the version and the list of API servers; anonymous users reach
// only the public probe paths.
func authorize(ctx context.Context, a authorizer.Attributes, deps authzDeps) (authorizer.Decision, string, error) {
	u := a.GetUser()
	if u == nil {
		return authorizer.DecisionDeny, "no user", nil
	}
	for _, g := range u.GetGroups() {
		switch g {
		case user.SystemPrivilegedGroup:
			return authorizer.DecisionAllow, "", nil
		case refusedTokensGroup:
			// Discovery stays open, so that a client reaches the request
			// that is refused with the reason.
			if a.IsResourceRequest() {
				return authorizer.DecisionDeny, strings.Join(u.GetExtra()[refusalExtra], "; "), nil
			}
		}
	}
	if hasGroup(u, ServerJoinerGroup) {
		if !a.IsResourceRequest() && a.GetVerb() == "post" && a.GetPath() == ClusterJoinPath {
			return authorizer.DecisionAllow, "", nil
		}
		return authorizer.DecisionDeny, "a server token only joins a server to the cluster (POST " + ClusterJoinPath + ")", nil
	}
	if isServerListRead(u, a) {
		return authorizer.DecisionAllow, "", nil
	}
	if _, ok := nodeName(u); ok && !a.IsResourceRequest() && a.GetVerb() == "get" &&
		(a.GetPath() == gossip.APIPath || a.GetPath() == skiffv1alpha1.APIServerClientKeyPath) {
		return authorizer.DecisionAllow, "", nil // a node fetches the gossip keys and seeds, or the key logs and metrics come from
	}
	if node, ok := nodeName(u); ok {
		if d, reason := authorizeNode(ctx, node, a, deps.refs); d != authorizer.DecisionNoOpinion {
			return d, reason, nil
		}
	}
	if d, reason := authorizeImpersonation(u, a, deps.static); d != authorizer.DecisionNoOpinion {
		return d, reason, nil
	}
	if hasGroup(u, skiffv1alpha1.BootstrappersGroup) && a.IsResourceRequest() {
		d, reason := authorizeBootstrap(a)
		return d, reason, nil
	}
	if deps.roles != nil {
		if d, reason, err := deps.roles.Authorize(ctx, a); d == authorizer.DecisionAllow {
			return d, reason, err
		}
	}
	if a.IsResourceRequest() {
		return authorizer.DecisionDeny, fmt.Sprintf("user %q may not %s %s", u.GetName(), a.GetVerb(), a.GetResource()), nil
	}
	if isPublicPath(a.GetPath()) {
		return authorizer.DecisionAllow, "", nil
	}
	if u.GetName() != user.Anonymous && a.IsReadOnly() && isDiscoveryPath(a.GetPath()) {
		return authorizer.DecisionAllow, "", nil
	}
	return authorizer.DecisionDeny, fmt.Sprintf("user %q may not %s %s", u.GetName(), a.GetVerb(), a.GetPath()), nil
}

// isServerListRead is a GET of the live API servers by any authenticated
// user: a person's key, a node, the MCP bridge, and the join token's
// user too, so that an agent can find another server while it joins. A
// join token that is expired or revoked (refusedTokensGroup) may not, nor
// may anonymous users: the list names the servers' addresses.
func isServerListRead(u user.Info, a authorizer.Attributes) bool {
	return !a.IsResourceRequest() && a.GetVerb() == "get" && a.GetPath() == skiffv1alpha1.ServersPath &&
		hasGroup(u, user.AllAuthenticated) && !hasGroup(u, refusedTokensGroup)
}

func isDiscoveryPath(path string) bool {
	for _, p := range []string{"/api", "/apis", "/openapi", "/version"} {
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}
