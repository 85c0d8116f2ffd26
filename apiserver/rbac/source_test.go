package rbac

import (
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
)

// fakeSource is a Source over maps, as the API server's is over its
// stores.
type fakeSource struct {
	clusterRoles        map[string]*rbacv1.ClusterRole
	roles               map[string]*rbacv1.Role // by "namespace/name"
	clusterRoleBindings []*rbacv1.ClusterRoleBinding
	roleBindings        map[string][]*rbacv1.RoleBinding // by namespace
}

var _ Source = (*fakeSource)(nil)

// newSource holds objs: roles and bindings of the four kinds, or slices of
// them (as Builtin returns).
func newSource(objs ...any) *fakeSource {
	s := &fakeSource{
		clusterRoles: map[string]*rbacv1.ClusterRole{},
		roles:        map[string]*rbacv1.Role{},
		roleBindings: map[string][]*rbacv1.RoleBinding{},
	}
	for _, o := range objs {
		s.add(o)
	}
	return s
}

func (s *fakeSource) add(o any) {
	switch o := o.(type) {
	case *rbacv1.ClusterRole:
		s.clusterRoles[o.Name] = o
	case *rbacv1.Role:
		s.roles[o.Namespace+"/"+o.Name] = o
	case *rbacv1.ClusterRoleBinding:
		s.clusterRoleBindings = append(s.clusterRoleBindings, o)
	case *rbacv1.RoleBinding:
		s.roleBindings[o.Namespace] = append(s.roleBindings[o.Namespace], o)
	case []*rbacv1.ClusterRole:
		for _, r := range o {
			s.add(r)
		}
	case []*rbacv1.ClusterRoleBinding:
		for _, b := range o {
			s.add(b)
		}
	default:
		panic(fmt.Sprintf("fakeSource: unexpected %T", o))
	}
}

func (s *fakeSource) GetClusterRole(name string) (*rbacv1.ClusterRole, bool) {
	r, ok := s.clusterRoles[name]
	return r, ok
}

func (s *fakeSource) GetRole(namespace, name string) (*rbacv1.Role, bool) {
	r, ok := s.roles[namespace+"/"+name]
	return r, ok
}

func (s *fakeSource) ClusterRoleBindings() []*rbacv1.ClusterRoleBinding {
	return s.clusterRoleBindings
}

func (s *fakeSource) RoleBindings(namespace string) []*rbacv1.RoleBinding {
	return s.roleBindings[namespace]
}

// Builders for the tests' objects.

func newClusterRole(name string, rules ...rbacv1.PolicyRule) *rbacv1.ClusterRole {
	return &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}
}

func newRole(namespace, name string, rules ...rbacv1.PolicyRule) *rbacv1.Role {
	return &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}, Rules: rules}
}

func newClusterRoleBinding(name, clusterRole string, subjects ...rbacv1.Subject) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole},
		Subjects:   subjects,
	}
}

func newRoleBinding(namespace, name, roleKind, role string, subjects ...rbacv1.Subject) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: roleKind, Name: role},
		Subjects:   subjects,
	}
}

func userSubject(name string) rbacv1.Subject {
	return rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: name}
}

func groupSubject(name string) rbacv1.Subject {
	return rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: name}
}

func serviceAccountSubject(namespace, name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: namespace, Name: name}
}

// keyUser is a user as key authentication makes them.
func keyUser(name string, groups ...string) user.Info {
	return &user.DefaultInfo{Name: name, Groups: append([]string{KeysGroup, user.AllAuthenticated}, groups...)}
}

// resourceRequest is a request for resource (and subresource) in namespace.
func resourceRequest(u user.Info, verb, group, resource, subresource, namespace, name string) authorizer.AttributesRecord {
	return authorizer.AttributesRecord{
		User: u, Verb: verb, APIGroup: group, Resource: resource, Subresource: subresource,
		Namespace: namespace, Name: name, ResourceRequest: true,
	}
}

// urlRequest is a request for a non-resource URL.
func urlRequest(u user.Info, verb, path string) authorizer.AttributesRecord {
	return authorizer.AttributesRecord{User: u, Verb: verb, Path: path}
}
