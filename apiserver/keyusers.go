package apiserver

import (
	"crypto/ed25519"
	"fmt"

	"k8s.io/apiserver/pkg/authentication/user"

	"skiff.dev/skiff/apiserver/rbac"
	"skiff.dev/skiff/identity"
)

// keyUsers decides who a key is: a principal of the trust set (the
// admin, the MCP bridge, a node), or else the key's own user
// (identity.KeyUserName, in group rbac.KeysGroup) when some binding names
// that user or the trust preset is permissive. Any other key is refused.
// The user name comes from the key alone, so authorization and the audit
// log know a person by the key they hold, whatever they call themselves.
type keyUsers struct {
	trust *identity.Trust
	// permissive accepts every valid key (--trust-preset permissive).
	permissive bool
	// known reports whether a binding names a user (nil: none does).
	known func(name string) bool
}

func (k keyUsers) userFor(pub ed25519.PublicKey) (user.Info, error) {
	if p, ok := k.trust.Lookup(pub); ok {
		groups := append(append([]string{}, p.Groups...), user.AllAuthenticated)
		return &user.DefaultInfo{Name: p.Name, Groups: groups}, nil
	}
	name := identity.KeyUserName(pub)
	if k.permissive || k.known != nil && k.known(name) {
		return &user.DefaultInfo{Name: name, Groups: []string{rbac.KeysGroup, user.AllAuthenticated}}, nil
	}
	return nil, fmt.Errorf("key %s is not trusted (no binding names %s; an admin trusts it with skiff trust add)", identity.EncodePublicKey(pub), name)
}

// allowed is userFor as a yes or no, for the signed-request verifier (it
// records a signature only for a key that may sign in).
func (k keyUsers) allowed(pub ed25519.PublicKey) error {
	_, err := k.userFor(pub)
	return err
}
