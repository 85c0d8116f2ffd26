package rbac

import (
	"fmt"

	coordinationv1 "k8s.io/api/coordination/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/user"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// The built-in ClusterRoles.
const (
	// AdminRole may do anything.
	AdminRole = "skiff:admin"
	// OperatorRole runs workloads: it reads and writes workloads,
	// instances, events, secrets and configmaps, and reads nodes,
	// namespaces and leases. It cannot touch RBAC.
	OperatorRole = "skiff:operator"
	// ViewerRole reads what operators write, except secrets, and reads no
	// RBAC objects.
	ViewerRole = "skiff:viewer"
	// MCPRole is the MCP bridge's: impersonating users and discovery.
	MCPRole = "skiff:mcp"
	// DiscoveryRole is discovery, OpenAPI, version, the health probes and
	// asking what one may do; bound to every authenticated user.
	DiscoveryRole = "skiff:discovery"
)

// KeysGroup is the group every key-authenticated user carries.
const KeysGroup = "skiff:keys"

// Labels and annotations on the objects of this package.
const (
	// BuiltinLabel, "true", marks the roles and bindings skiff creates.
	BuiltinLabel = "skiff.dev/builtin"
	// DescriptionAnnotation says what a built-in role or binding is for.
	DescriptionAnnotation = "skiff.dev/description"
)

// The presets PresetBindings knows.
const (
	// PresetRestrictive binds nothing beyond BuiltinBindings: key users may
	// do nothing until an admin binds them a role.
	PresetRestrictive = "restrictive"
	// PresetPermissive lets every key user read as ViewerRole.
	PresetPermissive = "permissive"
)

// PermissiveBinding is the ClusterRoleBinding of PresetPermissive.
const PermissiveBinding = "skiff:preset:permissive"

// The verbs the built-in roles grant, new slices for each rule so that no
// two objects share one.
func readVerbs() []string { return []string{"get", "list", "watch"} }

func readWriteVerbs() []string {
	return []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
}

// Builtin returns skiff's built-in ClusterRoles, new objects on each call.
func Builtin() []*rbacv1.ClusterRole {
	return []*rbacv1.ClusterRole{
		clusterRole(AdminRole, "May do anything.",
			rbacv1.PolicyRule{APIGroups: []string{rbacv1.APIGroupAll}, Resources: []string{rbacv1.ResourceAll}, Verbs: []string{rbacv1.VerbAll}},
			rbacv1.PolicyRule{NonResourceURLs: []string{rbacv1.NonResourceAll}, Verbs: []string{rbacv1.VerbAll}},
		),
		clusterRole(OperatorRole, "Runs workloads: reads and writes workloads, instances, events, secrets and configmaps; reads nodes, namespaces and leases. No RBAC.",
			rbacv1.PolicyRule{APIGroups: []string{skiffv1alpha1.GroupName}, Resources: []string{"workloads", "workloads/scale", "workloads/status", "instances", "instances/log", "instances/exec"}, Verbs: readWriteVerbs()},
			rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"events", "secrets", "configmaps"}, Verbs: readWriteVerbs()},
			rbacv1.PolicyRule{APIGroups: []string{skiffv1alpha1.GroupName}, Resources: []string{"nodes", "nodes/metrics"}, Verbs: readVerbs()},
			rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: readVerbs()},
			rbacv1.PolicyRule{APIGroups: []string{coordinationv1.GroupName}, Resources: []string{"leases"}, Verbs: readVerbs()},
		),
		clusterRole(ViewerRole, "Reads workloads, instances and their logs, nodes, namespaces, events, configmaps and leases. No secrets, no RBAC.",
			rbacv1.PolicyRule{APIGroups: []string{skiffv1alpha1.GroupName}, Resources: []string{"workloads", "workloads/scale", "instances", "instances/log", "nodes"}, Verbs: readVerbs()},
			rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"namespaces", "events", "configmaps"}, Verbs: readVerbs()},
			rbacv1.PolicyRule{APIGroups: []string{coordinationv1.GroupName}, Resources: []string{"leases"}, Verbs: readVerbs()},
		),
		clusterRole(MCPRole, "The MCP bridge: impersonates users (the API server holds it to key users) and reads discovery.",
			rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"users"}, Verbs: []string{"impersonate"}},
			rbacv1.PolicyRule{NonResourceURLs: []string{"/api", "/api/*", "/apis", "/apis/*", "/openapi/*", "/version"}, Verbs: []string{"get"}},
		),
		clusterRole(DiscoveryRole, "Discovery, OpenAPI, version and health probes, and asking what one may do; for every authenticated user.",
			rbacv1.PolicyRule{NonResourceURLs: []string{"/api", "/api/*", "/apis", "/apis/*", "/openapi", "/openapi/*", "/version", "/version/*", "/healthz", "/livez", "/readyz"}, Verbs: []string{"get"}},
			rbacv1.PolicyRule{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"selfsubjectaccessreviews", "selfsubjectrulesreviews"}, Verbs: []string{"create"}},
		),
	}
}

// BuiltinBindings returns the ClusterRoleBindings skiff always has:
// DiscoveryRole to every authenticated user.
func BuiltinBindings() []*rbacv1.ClusterRoleBinding {
	return []*rbacv1.ClusterRoleBinding{
		groupBinding(DiscoveryRole, DiscoveryRole, user.AllAuthenticated, "Every authenticated user may read discovery and ask what it may do."),
	}
}

// PresetBindings returns the ClusterRoleBindings of the named starting
// policy, PresetRestrictive or PresetPermissive.
func PresetBindings(preset string) ([]*rbacv1.ClusterRoleBinding, error) {
	switch preset {
	case PresetRestrictive:
		return nil, nil
	case PresetPermissive:
		return []*rbacv1.ClusterRoleBinding{
			groupBinding(PermissiveBinding, ViewerRole, KeysGroup, "The permissive preset: every key user may read as "+ViewerRole+"."),
		}, nil
	}
	return nil, fmt.Errorf("RBAC preset %q: not %q or %q", preset, PresetRestrictive, PresetPermissive)
}

func builtinMeta(name, description string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:        name,
		Labels:      map[string]string{BuiltinLabel: "true"},
		Annotations: map[string]string{DescriptionAnnotation: description},
	}
}

func clusterRole(name, description string, rules ...rbacv1.PolicyRule) *rbacv1.ClusterRole {
	return &rbacv1.ClusterRole{ObjectMeta: builtinMeta(name, description), Rules: rules}
}

func groupBinding(name, role, group, description string) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		ObjectMeta: builtinMeta(name, description),
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: group}},
	}
}
