package apiserver

import (
	"context"
	"fmt"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"

	"skiff.dev/skiff/apiserver/rbac"
)

// The authorization.k8s.io/v1 reviews: asking the server what a user may
// do (`kubectl auth can-i`, `kubectl auth can-i --list`). They are created,
// answered and not stored.

var authorizationGV = authorizationv1.SchemeGroupVersion

// reviewTypes are the review kinds, for the scheme.
func reviewTypes() []runtime.Object {
	return []runtime.Object{
		&authorizationv1.SelfSubjectAccessReview{},
		&authorizationv1.SubjectAccessReview{},
		&authorizationv1.SelfSubjectRulesReview{},
	}
}

// reviewStorage is the reviews' storage by resource name.
func reviewStorage(authz authorizer.Authorizer, rules *rbac.Authorizer) map[string]rest.Storage {
	return map[string]rest.Storage{
		"selfsubjectaccessreviews": &accessReviewREST{authz: authz, self: true},
		"subjectaccessreviews":     &accessReviewREST{authz: authz},
		"selfsubjectrulesreviews":  &rulesReviewREST{rules: rules},
	}
}

// accessReviewREST answers SelfSubjectAccessReviews (self) or
// SubjectAccessReviews with the server's whole authorizer.
type accessReviewREST struct {
	authz authorizer.Authorizer
	self  bool
}

var (
	_ rest.Creater              = (*accessReviewREST)(nil)
	_ rest.Scoper               = (*accessReviewREST)(nil)
	_ rest.SingularNameProvider = (*accessReviewREST)(nil)
)

func (r *accessReviewREST) New() runtime.Object {
	if r.self {
		return &authorizationv1.SelfSubjectAccessReview{}
	}
	return &authorizationv1.SubjectAccessReview{}
}

func (r *accessReviewREST) Destroy()              {}
func (r *accessReviewREST) NamespaceScoped() bool { return false }

func (r *accessReviewREST) GetSingularName() string {
	if r.self {
		return "selfsubjectaccessreview"
	}
	return "subjectaccessreview"
}

func (r *accessReviewREST) Create(ctx context.Context, obj runtime.Object, validate rest.ValidateObjectFunc, _ *metav1.CreateOptions) (runtime.Object, error) {
	var (
		u           user.Info
		resource    *authorizationv1.ResourceAttributes
		nonResource *authorizationv1.NonResourceAttributes
		status      *authorizationv1.SubjectAccessReviewStatus
		kind        = authorizationGV.WithKind("SubjectAccessReview").GroupKind()
	)
	switch review := obj.(type) {
	case *authorizationv1.SelfSubjectAccessReview:
		caller, ok := genericapirequest.UserFrom(ctx)
		if !ok {
			return nil, apierrors.NewBadRequest("no user in the request")
		}
		u, resource, nonResource, status = caller, review.Spec.ResourceAttributes, review.Spec.NonResourceAttributes, &review.Status
		kind.Kind = "SelfSubjectAccessReview"
	case *authorizationv1.SubjectAccessReview:
		if review.Spec.User == "" && len(review.Spec.Groups) == 0 {
			return nil, apierrors.NewInvalid(kind, "", field.ErrorList{field.Required(field.NewPath("spec", "user"), "user or groups is required")})
		}
		extra := map[string][]string{}
		for k, v := range review.Spec.Extra {
			extra[k] = v
		}
		u = &user.DefaultInfo{Name: review.Spec.User, UID: review.Spec.UID, Groups: review.Spec.Groups, Extra: extra}
		resource, nonResource, status = review.Spec.ResourceAttributes, review.Spec.NonResourceAttributes, &review.Status
	default:
		return nil, apierrors.NewBadRequest(fmt.Sprintf("not an access review: %T", obj))
	}
	if (resource == nil) == (nonResource == nil) {
		return nil, apierrors.NewInvalid(kind, "", field.ErrorList{field.Invalid(field.NewPath("spec"), "", "exactly one of resourceAttributes and nonResourceAttributes must be set")})
	}
	if validate != nil {
		if err := validate(ctx, obj); err != nil {
			return nil, err
		}
	}
	attrs := authorizer.AttributesRecord{User: u}
	if resource != nil {
		attrs.Verb, attrs.Namespace, attrs.APIGroup, attrs.APIVersion = resource.Verb, resource.Namespace, resource.Group, resource.Version
		attrs.Resource, attrs.Subresource, attrs.Name = resource.Resource, resource.Subresource, resource.Name
		attrs.ResourceRequest = true
	} else {
		attrs.Verb, attrs.Path = nonResource.Verb, nonResource.Path
	}
	d, reason, err := r.authz.Authorize(ctx, attrs)
	*status = authorizationv1.SubjectAccessReviewStatus{
		Allowed: d == authorizer.DecisionAllow,
		Denied:  d == authorizer.DecisionDeny,
		Reason:  reason,
	}
	if err != nil {
		status.EvaluationError = err.Error()
	}
	return obj, nil
}

// rulesReviewREST answers SelfSubjectRulesReviews from RBAC. skiff's own
// rules (admins, nodes, the MCP bridge's impersonation) are not RBAC
// rules: an admin is shown everything; for nodes the answer is marked
// incomplete.
type rulesReviewREST struct {
	rules *rbac.Authorizer
}

var (
	_ rest.Creater              = (*rulesReviewREST)(nil)
	_ rest.Scoper               = (*rulesReviewREST)(nil)
	_ rest.SingularNameProvider = (*rulesReviewREST)(nil)
)

func (r *rulesReviewREST) New() runtime.Object {
	return &authorizationv1.SelfSubjectRulesReview{}
}
func (r *rulesReviewREST) Destroy()                {}
func (r *rulesReviewREST) NamespaceScoped() bool   { return false }
func (r *rulesReviewREST) GetSingularName() string { return "selfsubjectrulesreview" }

func (r *rulesReviewREST) Create(ctx context.Context, obj runtime.Object, validate rest.ValidateObjectFunc, _ *metav1.CreateOptions) (runtime.Object, error) {
	review, ok := obj.(*authorizationv1.SelfSubjectRulesReview)
	if !ok {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("not a SelfSubjectRulesReview: %T", obj))
	}
	u, ok := genericapirequest.UserFrom(ctx)
	if !ok {
		return nil, apierrors.NewBadRequest("no user in the request")
	}
	if validate != nil {
		if err := validate(ctx, obj); err != nil {
			return nil, err
		}
	}
	if hasGroup(u, user.SystemPrivilegedGroup) {
		review.Status = authorizationv1.SubjectRulesReviewStatus{
			ResourceRules:    []authorizationv1.ResourceRule{{Verbs: []string{rbacv1.VerbAll}, APIGroups: []string{rbacv1.APIGroupAll}, Resources: []string{rbacv1.ResourceAll}}},
			NonResourceRules: []authorizationv1.NonResourceRule{{Verbs: []string{rbacv1.VerbAll}, NonResourceURLs: []string{rbacv1.NonResourceAll}}},
		}
		return review, nil
	}
	review.Status = r.rules.RulesReview(u, review.Spec.Namespace)
	if _, isNode := nodeName(u); isNode || hasGroup(u, MCPGroup) {
		review.Status.Incomplete = true
	}
	return review, nil
}
