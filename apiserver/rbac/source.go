package rbac

import (
	"errors"
	"fmt"
	"slices"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apiserver/pkg/authentication/serviceaccount"
	"k8s.io/apiserver/pkg/authentication/user"
)

// Source is where the Authorizer reads roles and bindings; the API server
// implements it over its stores. It is called on every authorization
// decision, from many goroutines at once, so it must be safe for
// concurrent use and answer from memory, not from etcd. The binding lists
// are scanned whole on each decision: return
// slices kept up to date as bindings change rather than building them per
// call. The Authorizer never modifies what it returns.
type Source interface {
	GetClusterRole(name string) (*rbacv1.ClusterRole, bool)
	GetRole(namespace, name string) (*rbacv1.Role, bool)
	ClusterRoleBindings() []*rbacv1.ClusterRoleBinding
	RoleBindings(namespace string) []*rbacv1.RoleBinding
}

// ErrRoleNotFound is wrapped by the errors about a roleRef naming a role
// that does not exist.
var ErrRoleNotFound = errors.New("role not found")

// bound is one binding that applies to the user being evaluated.
type bound struct {
	kind      string // "ClusterRoleBinding" or "RoleBinding"
	namespace string // the RoleBinding's
	name      string
	roleRef   rbacv1.RoleRef
	subject   rbacv1.Subject // the subject that matched the user
}

func (b bound) String() string {
	name := b.name
	if b.namespace != "" {
		name = b.namespace + "/" + b.name
	}
	return fmt.Sprintf("%s %q of %s %q to %s %q", b.kind, name, b.roleRef.Kind, b.roleRef.Name, b.subject.Kind, b.subject.Name)
}

// visit calls fn with the rules of each role bound to u that applies in
// namespace, ClusterRoleBindings first, until fn returns false. Namespace
// "" means cluster-wide: ClusterRoleBindings only. It returns an error
// for each binding on the way whose role does not exist; such a binding
// grants nothing.
func visit(src Source, u user.Info, namespace string, fn func(bound, []rbacv1.PolicyRule) bool) (missing []error) {
	for _, b := range src.ClusterRoleBindings() {
		i, ok := subjectFor(u, b.Subjects, "")
		if !ok {
			continue
		}
		at := bound{kind: "ClusterRoleBinding", name: b.Name, roleRef: b.RoleRef, subject: b.Subjects[i]}
		rules, err := roleRefRules(src, b.RoleRef, "")
		if err != nil {
			missing = append(missing, fmt.Errorf("%s: %w", at, err))
			continue
		}
		if !fn(at, rules) {
			return missing
		}
	}
	if namespace == "" {
		return missing
	}
	for _, b := range src.RoleBindings(namespace) {
		i, ok := subjectFor(u, b.Subjects, namespace)
		if !ok {
			continue
		}
		at := bound{kind: "RoleBinding", namespace: namespace, name: b.Name, roleRef: b.RoleRef, subject: b.Subjects[i]}
		rules, err := roleRefRules(src, b.RoleRef, namespace)
		if err != nil {
			missing = append(missing, fmt.Errorf("%s: %w", at, err))
			continue
		}
		if !fn(at, rules) {
			return missing
		}
	}
	return missing
}

// roleRefRules returns the rules of the role ref names, a Role being
// looked up in namespace.
func roleRefRules(src Source, ref rbacv1.RoleRef, namespace string) ([]rbacv1.PolicyRule, error) {
	switch ref.Kind {
	case "ClusterRole":
		if r, ok := src.GetClusterRole(ref.Name); ok {
			return r.Rules, nil
		}
	case "Role":
		if namespace == "" {
			return nil, fmt.Errorf("Role %q outside a namespace: %w", ref.Name, ErrRoleNotFound)
		}
		if r, ok := src.GetRole(namespace, ref.Name); ok {
			return r.Rules, nil
		}
	default:
		return nil, fmt.Errorf("roleRef kind %q is neither Role nor ClusterRole", ref.Kind)
	}
	return nil, fmt.Errorf("%s %q: %w", ref.Kind, ref.Name, ErrRoleNotFound)
}

// subjectFor returns the index of the first subject that is u. A
// ServiceAccount subject without a namespace stands for the account in
// bindingNamespace (and for none in a ClusterRoleBinding).
func subjectFor(u user.Info, subjects []rbacv1.Subject, bindingNamespace string) (int, bool) {
	for i := range subjects {
		if isUser(u, &subjects[i], bindingNamespace) {
			return i, true
		}
	}
	return 0, false
}

func isUser(u user.Info, s *rbacv1.Subject, bindingNamespace string) bool {
	switch s.Kind {
	case rbacv1.UserKind:
		return u.GetName() == s.Name
	case rbacv1.GroupKind:
		return slices.Contains(u.GetGroups(), s.Name)
	case rbacv1.ServiceAccountKind:
		ns := s.Namespace
		if ns == "" {
			ns = bindingNamespace
		}
		return ns != "" && serviceaccount.MatchesUsername(ns, s.Name, u.GetName())
	}
	return false
}
