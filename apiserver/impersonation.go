package apiserver

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"

	"k8s.io/apiserver/pkg/audit"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/endpoints/request"

	"skiff.dev/skiff/identity"
)

// The MCP bridge's own identity, made at first start (mcp.key) and
// written as mcp.kubeconfig. By itself it may read discovery and
// impersonate key users (identity.KeyUserName): over HTTP the bridge acts
// as each caller, so authorization and audit see the caller.
const (
	MCPUser  = "skiff:mcp"
	MCPGroup = "skiff:mcp"
	// MCPKubeconfigFile is the bridge's kubeconfig, rewritten at each start.
	MCPKubeconfigFile = "mcp.kubeconfig"
	// CallerAuditAnnotation names, in the audit log, the principal a key
	// user was resolved to; the event's user is the bridge and its
	// impersonatedUser the key user.
	CallerAuditAnnotation = "skiff.dev/caller"
)

// resolveKeyUser turns an impersonated key user into who its key is
// (keyUsers.userFor). isKey is false for every other user; err says why a
// key user is refused (its key is not trusted).
func resolveKeyUser(keys keyUsers, u user.Info) (resolved user.Info, isKey bool, err error) {
	pub, ok := identity.ParseKeyUserName(u.GetName())
	if !ok {
		return u, false, nil
	}
	resolved, err = keys.userFor(pub)
	return resolved, true, err
}

// attributesAs are a request's attributes with another user.
type attributesAs struct {
	authorizer.Attributes
	user user.Info
}

func (a attributesAs) GetUser() user.Info { return a.user }

// newAuthorizer is authorize, then RBAC, deciding for an impersonated key
// user as for who its key is.
func newAuthorizer(keys keyUsers, deps authzDeps) authorizer.Authorizer {
	return authorizer.AuthorizerFunc(func(ctx context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
		if u := a.GetUser(); u != nil {
			resolved, isKey, err := resolveKeyUser(keys, u)
			if err != nil {
				return authorizer.DecisionDeny, err.Error(), nil
			}
			if isKey {
				a = attributesAs{Attributes: a, user: resolved}
			}
		}
		return authorize(ctx, a, deps)
	})
}

// authorizeImpersonation holds everyone but admins to impersonating key
// users, and nothing else: not other users, groups, extras or service
// accounts, whatever a role says. The bridge's own identity may
// impersonate any key user; anyone else (as RBAC says: the skiff:mcp role
// grants it) only personal keys, never a key the server trusts as a
// principal (the admin, a node, the bridge), since impersonating a key is
// acting with all its rights and groups. static reports such keys.
func authorizeImpersonation(u user.Info, a authorizer.Attributes, static func(ed25519.PublicKey) bool) (authorizer.Decision, string) {
	if a.GetVerb() != "impersonate" {
		return authorizer.DecisionNoOpinion, ""
	}
	if a.GetAPIGroup() == "" && a.GetResource() == "users" && a.GetSubresource() == "" {
		if pub, ok := identity.ParseKeyUserName(a.GetName()); ok {
			switch {
			case hasGroup(u, MCPGroup):
				return authorizer.DecisionAllow, ""
			case static != nil && static(pub):
				return authorizer.DecisionDeny, fmt.Sprintf("%s may not impersonate %s: only the MCP bridge's own identity may act as the admin, a node or the bridge", u.GetName(), a.GetName())
			}
			return authorizer.DecisionNoOpinion, ""
		}
	}
	return authorizer.DecisionDeny, fmt.Sprintf("%s may impersonate only key users (%s...), not %s", u.GetName(), identity.KeyUserPrefix, resourceString(a))
}

// withKeyUsers puts the resolved principal of an impersonated key user in
// the request context, after authorization and before admission and the
// handlers, so that admission (the node restriction) sees who acts, and
// names that principal in the audit event.
func withKeyUsers(next http.Handler, keys keyUsers) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, ok := request.UserFrom(r.Context()); ok {
			resolved, isKey, err := resolveKeyUser(keys, u)
			if err != nil {
				http.Error(w, err.Error(), http.StatusForbidden)
				return
			}
			if isKey {
				ctx := request.WithUser(r.Context(), resolved)
				audit.AddAuditAnnotation(ctx, CallerAuditAnnotation, resolved.GetName())
				r = r.WithContext(ctx)
			}
		}
		next.ServeHTTP(w, r)
	})
}
