// Package rbac is Kubernetes RBAC (rbac.authorization.k8s.io/v1) as
// skiff's API server evaluates it, with skiff's built-in roles.
//
// The API server keeps Roles, ClusterRoles and their bindings in its
// stores and hands them to New as a Source. The Authorizer then allows a
// request when a rule of a role bound to the user permits it, and has no
// opinion otherwise, so that it sits in a chain after skiff's own
// authorizers (admins, nodes, the MCP bridge):
//
//	authz := rbac.New(src)
//	decision, reason, err := authz.Authorize(ctx, attrs)
//
// Rules mean what they mean in Kubernetes, so that a Role written for a
// Kubernetes cluster grants the same in skiff: `*` for all verbs, API
// groups or resources; "resource/subresource" and "*/subresource";
// resourceNames restricting by the request's name (so they never match a
// create or a list, which carry none); nonResourceURLs matched exactly or,
// ending in `*`, by prefix. As in Kubernetes, "resource/*" is not a
// wildcard: it names a subresource called "*".
//
// Writes of roles and bindings must not hand out more than the writer
// holds. The registry checks, as Kubernetes does, on create and on an
// update of anything but finalizers and ownerReferences:
//
//	// a Role in ns, or a ClusterRole (kind "ClusterRole", ns "")
//	if !rbac.EscalateAllowed(ctx, fullChain, u, "Role", ns, role.Name) {
//		err = authz.ConfirmNoEscalation(u, ns, role.Rules)
//	}
//	// a RoleBinding in ns, or a ClusterRoleBinding (ns "")
//	if !rbac.BindAllowed(ctx, fullChain, u, ns, binding.RoleRef) {
//		rules, err := authz.RoleRefRules(binding.RoleRef, ns)
//		if err == nil {
//			err = authz.ConfirmNoEscalation(u, ns, rules)
//		}
//	}
//
// and refuses the write with a Forbidden status carrying err. fullChain
// is the API server's whole authorizer, so that admins, who hold
// everything without any binding, pass. Validate* check the four kinds
// (not their metadata, which the registry validates for every kind);
// SetDefaults* fill in the API groups Kubernetes defaults.
//
// Builtin and BuiltinBindings are the roles and bindings skiff creates at
// start; PresetBindings the bindings of a named starting policy.
package rbac
