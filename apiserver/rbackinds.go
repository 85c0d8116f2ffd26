package apiserver

import (
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/api/validation/path"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"skiff.dev/skiff/apiserver/rbac"
)

// Roles, ClusterRoles and their bindings: rbac.authorization.k8s.io/v1,
// served as Kubernetes serves them and evaluated by package rbac.

var (
	rolesResource               = rbacv1.Resource("roles")
	clusterRolesResource        = rbacv1.Resource("clusterroles")
	roleBindingsResource        = rbacv1.Resource("rolebindings")
	clusterRoleBindingsResource = rbacv1.Resource("clusterrolebindings")
)

// validateRBACName: RBAC names are path segments, so that system:node
// and skiff:admin are valid, as in Kubernetes.
func validateRBACName(name string, prefix bool) []string { return path.IsValidPathSegmentName(name) }

func validateRBACMeta(m *metav1.ObjectMeta, namespaced bool) field.ErrorList {
	return validation.ValidateObjectMeta(m, namespaced, validateRBACName, field.NewPath("metadata"))
}

func validateRBACMetaUpdate(m, old *metav1.ObjectMeta) field.ErrorList {
	return validation.ValidateObjectMetaUpdate(m, old, field.NewPath("metadata"))
}

func roleKind() *Kind {
	return &Kind{
		GVK:    rbacv1.SchemeGroupVersion.WithKind("Role"),
		Plural: "roles", Singular: "role",
		Namespaced: true, KeepsNamespace: true,
		New:     func() runtime.Object { return &rbacv1.Role{} },
		NewList: func() runtime.Object { return &rbacv1.RoleList{} },
		Columns: []metav1.TableColumnDefinition{col("Created At", "date", "When the role was created."), ageColumn},
		Row: typed(func(r *rbacv1.Role) []interface{} {
			return []interface{}{r.CreationTimestamp.UTC().Format("2006-01-02T15:04:05Z"), age(r.CreationTimestamp)}
		}),
		Validate: typed(func(r *rbacv1.Role) field.ErrorList {
			return append(validateRBACMeta(&r.ObjectMeta, true), rbac.ValidateRole(r)...)
		}),
		ValidateUpdate: typed2(func(r, old *rbacv1.Role) field.ErrorList {
			return append(validateRBACMetaUpdate(&r.ObjectMeta, &old.ObjectMeta), rbac.ValidateRole(r)...)
		}),
	}
}

func clusterRoleKind() *Kind {
	return &Kind{
		GVK:    rbacv1.SchemeGroupVersion.WithKind("ClusterRole"),
		Plural: "clusterroles", Singular: "clusterrole",
		New:     func() runtime.Object { return &rbacv1.ClusterRole{} },
		NewList: func() runtime.Object { return &rbacv1.ClusterRoleList{} },
		Columns: []metav1.TableColumnDefinition{col("Created At", "date", "When the role was created."), ageColumn},
		Row: typed(func(r *rbacv1.ClusterRole) []interface{} {
			return []interface{}{r.CreationTimestamp.UTC().Format("2006-01-02T15:04:05Z"), age(r.CreationTimestamp)}
		}),
		Validate: typed(func(r *rbacv1.ClusterRole) field.ErrorList {
			return append(validateRBACMeta(&r.ObjectMeta, false), rbac.ValidateClusterRole(r)...)
		}),
		ValidateUpdate: typed2(func(r, old *rbacv1.ClusterRole) field.ErrorList {
			return append(validateRBACMetaUpdate(&r.ObjectMeta, &old.ObjectMeta), rbac.ValidateClusterRole(r)...)
		}),
	}
}

func roleBindingKind() *Kind {
	return &Kind{
		GVK:    rbacv1.SchemeGroupVersion.WithKind("RoleBinding"),
		Plural: "rolebindings", Singular: "rolebinding",
		Namespaced: true, KeepsNamespace: true,
		New:     func() runtime.Object { return &rbacv1.RoleBinding{} },
		NewList: func() runtime.Object { return &rbacv1.RoleBindingList{} },
		Columns: bindingColumns,
		Row: typed(func(b *rbacv1.RoleBinding) []interface{} {
			return bindingRow(b.RoleRef, b.Subjects, b.CreationTimestamp)
		}),
		PrepareForCreate: mutate(rbac.SetDefaultsRoleBinding),
		PrepareForUpdate: func(obj, _ runtime.Object) { rbac.SetDefaultsRoleBinding(obj.(*rbacv1.RoleBinding)) },
		Validate: typed(func(b *rbacv1.RoleBinding) field.ErrorList {
			return append(validateRBACMeta(&b.ObjectMeta, true), rbac.ValidateRoleBinding(b)...)
		}),
		ValidateUpdate: typed2(func(b, old *rbacv1.RoleBinding) field.ErrorList {
			return append(validateRBACMetaUpdate(&b.ObjectMeta, &old.ObjectMeta), rbac.ValidateRoleBindingUpdate(b, old)...)
		}),
	}
}

func clusterRoleBindingKind() *Kind {
	return &Kind{
		GVK:    rbacv1.SchemeGroupVersion.WithKind("ClusterRoleBinding"),
		Plural: "clusterrolebindings", Singular: "clusterrolebinding",
		New:     func() runtime.Object { return &rbacv1.ClusterRoleBinding{} },
		NewList: func() runtime.Object { return &rbacv1.ClusterRoleBindingList{} },
		Columns: bindingColumns,
		Row: typed(func(b *rbacv1.ClusterRoleBinding) []interface{} {
			return bindingRow(b.RoleRef, b.Subjects, b.CreationTimestamp)
		}),
		PrepareForCreate: mutate(rbac.SetDefaultsClusterRoleBinding),
		PrepareForUpdate: func(obj, _ runtime.Object) { rbac.SetDefaultsClusterRoleBinding(obj.(*rbacv1.ClusterRoleBinding)) },
		Validate: typed(func(b *rbacv1.ClusterRoleBinding) field.ErrorList {
			return append(validateRBACMeta(&b.ObjectMeta, false), rbac.ValidateClusterRoleBinding(b)...)
		}),
		ValidateUpdate: typed2(func(b, old *rbacv1.ClusterRoleBinding) field.ErrorList {
			return append(validateRBACMetaUpdate(&b.ObjectMeta, &old.ObjectMeta), rbac.ValidateClusterRoleBindingUpdate(b, old)...)
		}),
	}
}

// bindingColumns are kubectl's for bindings: the role, and with -o wide
// the subjects.
var bindingColumns = []metav1.TableColumnDefinition{
	col("Role", "string", "The role bound."),
	ageColumn,
	wide(col("Users", "string", "Users bound.")),
	wide(col("Groups", "string", "Groups bound.")),
	wide(col("ServiceAccounts", "string", "Service accounts bound.")),
}

func bindingRow(ref rbacv1.RoleRef, subjects []rbacv1.Subject, created metav1.Time) []interface{} {
	var users, groups, sas []string
	for _, s := range subjects {
		switch s.Kind {
		case rbacv1.UserKind:
			users = append(users, s.Name)
		case rbacv1.GroupKind:
			groups = append(groups, s.Name)
		case rbacv1.ServiceAccountKind:
			sas = append(sas, s.Namespace+"/"+s.Name)
		}
	}
	return []interface{}{
		ref.Kind + "/" + ref.Name, age(created),
		strings.Join(users, ", "), strings.Join(groups, ", "), strings.Join(sas, ", "),
	}
}
