package apiserver

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"fmt"
	"net/http"
	"strings"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/admission"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"
	genericapiserver "k8s.io/apiserver/pkg/server"

	"skiff.dev/skiff/apiserver/rbac"
	"skiff.dev/skiff/identity"
)

// access is who may do what: authentication, authorization and the
// admission that guards them. It is wired into the configuration before
// storage exists (applyAccess) and connected to the stores after
// (connectAccess).
type access struct {
	tokens    *joinTokens
	roles     *rbacSource
	rbac      *rbac.Authorizer
	instances *instanceGetter
	refs      *instanceRefs
}

// applyAccess sets the authenticator (keys by certificate or signature,
// join tokens), the handler chain's fair queues, the authorizer chain
// (admins, nodes, the MCP bridge, the join token, RBAC) and admission.
func (s *Server) applyAccess(cfg *genericapiserver.Config) (*access, error) {
	acc := &access{tokens: &joinTokens{now: time.Now}, roles: newRBACSource(), instances: &instanceGetter{}, refs: &instanceRefs{}}
	acc.rbac = rbac.New(acc.roles)
	keys := keyUsers{trust: s.trust, permissive: s.cfg.TrustPreset == rbac.PresetPermissive, known: acc.roles.known}
	guesses, fair := newTokenGuesses(), newFairness()
	authn := newKeyAuthenticator(keys, acc.tokens, time.Now)
	authn.guesses = guesses
	authn.signed = identity.NewRequestVerifier(identity.VerifierOptions{Skew: s.cfg.SignatureSkew, KeyAllowed: keys.allowed})
	serving, err := s.dir.servingCertificate()
	if err != nil {
		return nil, err
	}
	authn.hosts = certificateHosts(serving)
	cfg.Authentication.Authenticator = authn
	// Fair queues per identity (withFairness) instead of the library's
	// global in-flight limits.
	cfg.MaxRequestsInFlight, cfg.MaxMutatingRequestsInFlight = 0, 0
	cfg.BuildHandlerChainFunc = func(h http.Handler, c *genericapiserver.Config) http.Handler {
		chain := withoutLoopbackCompression(withBufferedResponses(genericapiserver.DefaultBuildHandlerChain(withFairness(withKeyUsers(withUnrecordedCreates(h, &s.unrecorded), keys), fair), c)))
		return withPublicProbes(withTokenGuessLimit(chain, guesses), h)
	}
	static := func(pub ed25519.PublicKey) bool { _, ok := s.trust.Lookup(pub); return ok }
	cfg.Authorization.Authorizer = newAuthorizer(keys, authzDeps{roles: acc.rbac, refs: acc.refs.references, static: static})
	cfg.AdmissionControl = admission.NewChainHandler(
		nodeRestriction{trust: s.trust, claims: newKeyClaims(), instances: acc.instances},
		noEscalation{rbac: acc.rbac, chain: cfg.Authorization.Authorizer},
	)
	return acc, nil
}

// certificateHosts are the names and addresses a certificate is for,
// lower case.
func certificateHosts(cert *x509.Certificate) map[string]bool {
	hosts := map[string]bool{}
	for _, n := range cert.DNSNames {
		hosts[strings.ToLower(n)] = true
	}
	for _, ip := range cert.IPAddresses {
		hosts[ip.String()] = true
	}
	return hosts
}

// connectAccess gives the access parts their stores and starts what runs:
// the RBAC mirrors (the server is ready once they have listed), the node
// key index, the built-in roles and the trust preset, the first-start
// join token's record.
func (s *Server) connectAccess(acc *access, generic *genericapiserver.GenericAPIServer, stores *installed) error {
	acc.instances.getter = stores.store(instancesResource)
	acc.refs.instances = stores.store(instancesResource)
	acc.tokens.secrets = stores.store(secretsResource)
	acc.roles.attach(stores)
	keys := newNodeKeys(stores.store(nodesResource), s.trust)
	hooks := []struct {
		name string
		hook genericapiserver.PostStartHookFunc
	}{
		{"skiff-node-keys", func(ctx genericapiserver.PostStartHookContext) error {
			go keys.Run(ctx)
			return nil
		}},
		{"skiff-rbac", func(ctx genericapiserver.PostStartHookContext) error {
			go acc.roles.Run(ctx)
			if err := ensureRoles(ctx, stores, s.cfg.TrustPreset); err != nil {
				return err
			}
			return poll(ctx, func() error {
				if !acc.roles.synced() {
					return fmt.Errorf("roles and bindings not listed yet")
				}
				return nil
			})
		}},
		{"skiff-initial-join-token", recordInitialToken(s.dir, s.joinToken, stores.store(secretsResource))},
	}
	for _, h := range hooks {
		if err := generic.AddPostStartHook(h.name, h.hook); err != nil {
			return err
		}
	}
	return nil
}

// ensureRoles creates the built-in ClusterRoles and bindings, and brings
// back to their definition those changed since (as Kubernetes reconciles
// its bootstrap roles); then applies the trust preset: permissive adds its
// binding, restrictive removes it.
func ensureRoles(ctx context.Context, stores *installed, preset string) error {
	ctx = genericapirequest.WithNamespace(ctx, metav1.NamespaceNone)
	want := []runtime.Object{}
	for _, r := range rbac.Builtin() {
		want = append(want, r)
	}
	bindings := append(rbac.BuiltinBindings(), mcpBinding())
	presetBindings, err := rbac.PresetBindings(preset)
	if err != nil {
		return fmt.Errorf("trust preset: %w", err)
	}
	for _, b := range append(bindings, presetBindings...) {
		want = append(want, b)
	}
	for _, obj := range want {
		store := stores.store(clusterRolesResource)
		if _, ok := obj.(*rbacv1.ClusterRoleBinding); ok {
			store = stores.store(clusterRoleBindingsResource)
		}
		if err := poll(ctx, func() error { return ensureObject(ctx, store, obj) }); err != nil {
			return fmt.Errorf("built-in %T: %w", obj, err)
		}
	}
	if preset != rbac.PresetPermissive {
		store := stores.store(clusterRoleBindingsResource)
		_, _, err := store.Delete(ctx, rbac.PermissiveBinding, rest.ValidateAllObjectFunc, &metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("remove the permissive preset's binding: %w", err)
		}
	}
	return nil
}

// mcpBinding gives the MCP bridge's own identity its role.
func mcpBinding() *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{
			Name:        rbac.MCPRole,
			Labels:      map[string]string{rbac.BuiltinLabel: "true"},
			Annotations: map[string]string{rbac.DescriptionAnnotation: "The MCP bridge's own identity."},
		},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: rbac.MCPRole},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: MCPGroup}},
	}
}

// ensureObject creates obj, or updates the stored one when its rules,
// role or subjects differ from obj's.
func ensureObject(ctx context.Context, store *REST, obj runtime.Object) error {
	_, err := store.Create(ctx, obj.DeepCopyObject(), nil, &metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	_, _, err = store.Update(ctx, nameOf(obj), rest.DefaultUpdatedObjectInfo(nil, func(_ context.Context, _, old runtime.Object) (runtime.Object, error) {
		switch want := obj.(type) {
		case *rbacv1.ClusterRole:
			cur := old.(*rbacv1.ClusterRole).DeepCopy()
			if apiequality.Semantic.DeepEqual(cur.Rules, want.Rules) {
				return cur, nil
			}
			cur.Rules = want.Rules
			return cur, nil
		case *rbacv1.ClusterRoleBinding:
			cur := old.(*rbacv1.ClusterRoleBinding).DeepCopy()
			cur.Subjects = want.Subjects // roleRef cannot change
			return cur, nil
		}
		return old, nil
	}), nil, nil, false, &metav1.UpdateOptions{})
	return err
}

func nameOf(obj runtime.Object) string {
	return key(obj)[1:] // cluster-scoped: "/name"
}
