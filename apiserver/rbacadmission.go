package apiserver

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/apiserver/rbac"
)

// noEscalation refuses writes that would hand out more than the writer
// holds, as Kubernetes' RBAC registry does: a role with rules the writer
// does not hold (unless it may escalate), a binding of a role whose rules
// the writer does not hold (unless it may bind that role). A join token
// record lets its holder register nodes, so writing one takes what
// registering a node takes: create on nodes.
type noEscalation struct {
	rbac *rbac.Authorizer
	// chain is the server's whole authorizer, so that admins pass.
	chain authorizer.Authorizer
}

var _ admission.ValidationInterface = noEscalation{}

func (noEscalation) Handles(op admission.Operation) bool {
	return op == admission.Create || op == admission.Update
}

func (n noEscalation) Validate(ctx context.Context, a admission.Attributes, _ admission.ObjectInterfaces) error {
	u := a.GetUserInfo()
	if u == nil || a.GetSubresource() != "" {
		return nil
	}
	var err error
	switch obj := a.GetObject().(type) {
	case *rbacv1.Role:
		if !rbac.EscalateAllowed(ctx, n.chain, u, "Role", obj.Namespace, obj.Name) {
			err = n.rbac.ConfirmNoEscalation(u, obj.Namespace, obj.Rules)
		}
	case *rbacv1.ClusterRole:
		if !rbac.EscalateAllowed(ctx, n.chain, u, "ClusterRole", "", obj.Name) {
			err = n.rbac.ConfirmNoEscalation(u, "", obj.Rules)
		}
	case *rbacv1.RoleBinding:
		err = n.confirmBinding(ctx, u, obj.Namespace, obj.RoleRef)
	case *rbacv1.ClusterRoleBinding:
		err = n.confirmBinding(ctx, u, "", obj.RoleRef)
	case *corev1.Secret:
		old, _ := a.GetOldObject().(*corev1.Secret)
		switch {
		case obj.Type == JoinTokenSecretType && (isServerToken(obj) || isServerToken(old)) && !n.allowedPath(ctx, u, "post", ClusterJoinPath):
			err = fmt.Errorf("user %q may not write server tokens: a server token hands its holder the cluster's keys, and the user may not join servers (post %s)", u.GetName(), ClusterJoinPath)
		case obj.Type == JoinTokenSecretType && !n.allowed(ctx, u, "create", skiffv1alpha1.GroupName, "nodes"):
			err = fmt.Errorf("user %q may not write join tokens: a join token registers nodes, and the user may not create nodes", u.GetName())
		}
	}
	if err != nil {
		return apierrors.NewForbidden(a.GetResource().GroupResource(), a.GetName(), err)
	}
	return nil
}

func (n noEscalation) confirmBinding(ctx context.Context, u user.Info, namespace string, ref rbacv1.RoleRef) error {
	if rbac.BindAllowed(ctx, n.chain, u, namespace, ref) {
		return nil
	}
	rules, err := n.rbac.RoleRefRules(ref, namespace)
	if err != nil {
		return err
	}
	return n.rbac.ConfirmNoEscalation(u, namespace, rules)
}

func (n noEscalation) allowed(ctx context.Context, u user.Info, verb, group, resource string) bool {
	d, _, _ := n.chain.Authorize(ctx, authorizer.AttributesRecord{
		User: u, Verb: verb, APIGroup: group, Resource: resource, ResourceRequest: true,
	})
	return d == authorizer.DecisionAllow
}

// allowedPath says whether u may verb the non-resource path.
func (n noEscalation) allowedPath(ctx context.Context, u user.Info, verb, path string) bool {
	d, _, _ := n.chain.Authorize(ctx, authorizer.AttributesRecord{User: u, Verb: verb, Path: path})
	return d == authorizer.DecisionAllow
}

// isServerToken says whether s is the record of a server token.
func isServerToken(s *corev1.Secret) bool {
	return s != nil && s.Type == JoinTokenSecretType && string(s.Data[JoinTokenRoleKey]) == TokenRoleServer
}
