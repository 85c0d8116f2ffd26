package rbac

import (
	"context"
	"slices"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
)

// Authorizer decides requests by the roles bound to their user. It reads
// its Source on every call and keeps no state, so it is safe for
// concurrent use and sees a change as soon as the Source does.
type Authorizer struct {
	src Source
}

var _ authorizer.Authorizer = (*Authorizer)(nil)

// New returns an Authorizer over src.
func New(src Source) *Authorizer {
	return &Authorizer{src: src}
}

// Authorize allows the request when a rule of a role bound to its user
// permits it: ClusterRoleBindings in every namespace and for cluster-scoped
// resources and non-resource URLs, RoleBindings only in their own
// namespace. Otherwise it has no opinion, and RBAC never denies.
func (a *Authorizer) Authorize(_ context.Context, attrs authorizer.Attributes) (authorizer.Decision, string, error) {
	u := attrs.GetUser()
	if u == nil {
		return authorizer.DecisionNoOpinion, "RBAC: no user", nil
	}
	req := requestOf(attrs)
	var (
		allowed   bool
		allowedBy bound
	)
	missing := visit(a.src, u, attrs.GetNamespace(), func(b bound, rules []rbacv1.PolicyRule) bool {
		for i := range rules {
			if req.allows(&rules[i]) {
				allowed, allowedBy = true, b
				return false
			}
		}
		return true
	})
	if allowed {
		return authorizer.DecisionAllow, "RBAC: allowed by " + allowedBy.String(), nil
	}
	reason := "RBAC: no role bound to the user allows it"
	if len(missing) > 0 {
		reason += "; " + joinErrors(missing)
	}
	return authorizer.DecisionNoOpinion, reason, nil
}

// ConditionsAwareAuthorize is Authorize: RBAC decides without conditions.
func (a *Authorizer) ConditionsAwareAuthorize(ctx context.Context, attrs authorizer.Attributes) authorizer.ConditionsAwareDecision {
	return authorizer.ConditionsAwareDecisionFromParts(a.Authorize(ctx, attrs))
}

// EvaluateConditions refuses: RBAC never returns a conditional decision.
func (a *Authorizer) EvaluateConditions(context.Context, authorizer.ConditionsAwareDecision, authorizer.ConditionsData) (authorizer.Decision, string, error) {
	return authorizer.DecisionDeny, "", authorizer.ErrorConditionEvaluationNotSupported
}

// RulesFor returns the rules of every role bound to u that apply in
// namespace: those of its ClusterRoleBindings and, unless namespace is "",
// of its RoleBindings there. The rules share memory with the Source's
// objects and must not be modified.
func (a *Authorizer) RulesFor(u user.Info, namespace string) []rbacv1.PolicyRule {
	rules, _ := a.rulesFor(u, namespace)
	return rules
}

func (a *Authorizer) rulesFor(u user.Info, namespace string) ([]rbacv1.PolicyRule, []error) {
	var rules []rbacv1.PolicyRule
	missing := visit(a.src, u, namespace, func(_ bound, r []rbacv1.PolicyRule) bool {
		rules = append(rules, r...)
		return true
	})
	return rules, missing
}

// RulesReview is what u may do in namespace, as the status of a
// SelfSubjectRulesReview (`kubectl auth can-i --list`). Bindings to
// missing roles are named in EvaluationError. Incomplete is left false:
// the caller sets it when other authorizers in its chain may allow more.
func (a *Authorizer) RulesReview(u user.Info, namespace string) authorizationv1.SubjectRulesReviewStatus {
	rules, missing := a.rulesFor(u, namespace)
	var status authorizationv1.SubjectRulesReviewStatus
	for _, r := range rules {
		if len(r.Resources) > 0 {
			status.ResourceRules = append(status.ResourceRules, authorizationv1.ResourceRule{
				Verbs:         slices.Clone(r.Verbs),
				APIGroups:     slices.Clone(r.APIGroups),
				Resources:     slices.Clone(r.Resources),
				ResourceNames: slices.Clone(r.ResourceNames),
			})
		}
		if len(r.NonResourceURLs) > 0 {
			status.NonResourceRules = append(status.NonResourceRules, authorizationv1.NonResourceRule{
				Verbs:           slices.Clone(r.Verbs),
				NonResourceURLs: slices.Clone(r.NonResourceURLs),
			})
		}
	}
	if len(missing) > 0 {
		status.EvaluationError = joinErrors(missing)
	}
	return status
}

// RoleRefRules returns the rules of the role ref names, a Role being
// looked up in namespace: what a binding there grants. The error wraps
// ErrRoleNotFound when there is no such role.
func (a *Authorizer) RoleRefRules(ref rbacv1.RoleRef, namespace string) ([]rbacv1.PolicyRule, error) {
	return roleRefRules(a.src, ref, namespace)
}

func joinErrors(errs []error) string {
	msgs := make([]string, len(errs))
	for i, err := range errs {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}
