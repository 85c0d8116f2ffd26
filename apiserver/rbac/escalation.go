package rbac

import (
	"context"
	"fmt"
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
)

// EscalationError is ConfirmNoEscalation's refusal: User would grant
// Missing, which it does not hold itself.
type EscalationError struct {
	User   string
	Groups []string
	// Missing are the rules not held, those differing only in their verbs
	// merged into one.
	Missing []rbacv1.PolicyRule
}

func (e *EscalationError) Error() string {
	lines := make([]string, len(e.Missing))
	for i, r := range e.Missing {
		lines[i] = ruleString(r)
	}
	slices.Sort(lines)
	return fmt.Sprintf("user %q (groups=%q) is attempting to grant RBAC permissions not currently held:\n%s",
		e.User, e.Groups, strings.Join(lines, "\n"))
}

// ruleString writes r's non-empty fields as Kubernetes does in its
// escalation errors: {APIGroups:["skiff.dev"], Resources:["workloads"], Verbs:["get"]}.
func ruleString(r rbacv1.PolicyRule) string {
	var parts []string
	for _, f := range []struct {
		name   string
		values []string
	}{
		{"APIGroups", r.APIGroups},
		{"Resources", r.Resources},
		{"NonResourceURLs", r.NonResourceURLs},
		{"ResourceNames", r.ResourceNames},
		{"Verbs", r.Verbs},
	} {
		if len(f.values) > 0 {
			parts = append(parts, fmt.Sprintf("%s:%q", f.name, f.values))
		}
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// ConfirmNoEscalation returns an *EscalationError unless u holds every one
// of rules in namespace itself (namespace "": its cluster-wide rules
// only). It is how a write of a role, or of a binding of one, is kept
// from handing out more than the writer has; see EscalateAllowed and
// BindAllowed for the verbs that waive it.
func (a *Authorizer) ConfirmNoEscalation(u user.Info, namespace string, rules []rbacv1.PolicyRule) error {
	missing := Uncovered(a.RulesFor(u, namespace), rules)
	if len(missing) == 0 {
		return nil
	}
	return &EscalationError{User: u.GetName(), Groups: u.GetGroups(), Missing: mergeVerbs(missing)}
}

// Uncovered returns the parts of rules that owned does not cover, each a
// rule of one verb and one API group, resource and resource name, or one
// verb and one non-resource URL. A requested `*` is covered only by a `*`;
// "*/sub" covers every resource's subresource sub; a rule without
// resourceNames covers every name, one with them only those; a URL ending
// in "*" covers the URLs it is a prefix of.
func Uncovered(owned, rules []rbacv1.PolicyRule) []rbacv1.PolicyRule {
	var missing []rbacv1.PolicyRule
	for _, r := range rules {
		for _, atom := range atoms(r) {
			if !slices.ContainsFunc(owned, func(o rbacv1.PolicyRule) bool { return covers(&o, &atom) }) {
				missing = append(missing, atom)
			}
		}
	}
	return missing
}

// atoms splits r into rules of one verb and one group, resource and
// resource name (if r has any), or of one verb and one URL.
func atoms(r rbacv1.PolicyRule) []rbacv1.PolicyRule {
	names := r.ResourceNames
	if len(names) == 0 {
		names = []string{""}
	}
	var out []rbacv1.PolicyRule
	for _, g := range r.APIGroups {
		for _, res := range r.Resources {
			for _, v := range r.Verbs {
				for _, n := range names {
					atom := rbacv1.PolicyRule{APIGroups: []string{g}, Resources: []string{res}, Verbs: []string{v}}
					if n != "" {
						atom.ResourceNames = []string{n}
					}
					out = append(out, atom)
				}
			}
		}
	}
	for _, url := range r.NonResourceURLs {
		for _, v := range r.Verbs {
			out = append(out, rbacv1.PolicyRule{NonResourceURLs: []string{url}, Verbs: []string{v}})
		}
	}
	return out
}

// covers reports whether owned takes in atom, one of atoms' rules.
func covers(owned, atom *rbacv1.PolicyRule) bool {
	if !matchesOrAll(owned.Verbs, atom.Verbs[0]) {
		return false
	}
	if len(atom.NonResourceURLs) > 0 {
		return urlMatches(owned.NonResourceURLs, atom.NonResourceURLs[0])
	}
	return matchesOrAll(owned.APIGroups, atom.APIGroups[0]) &&
		resourceCovered(owned.Resources, atom.Resources[0]) &&
		(len(owned.ResourceNames) == 0 || len(atom.ResourceNames) == 1 && slices.Contains(owned.ResourceNames, atom.ResourceNames[0]))
}

// resourceCovered reports whether owned takes in resource, which may be
// "*", "resource/sub" or "*/sub".
func resourceCovered(owned []string, resource string) bool {
	if matchesOrAll(owned, resource) {
		return true
	}
	_, sub, ok := strings.Cut(resource, "/")
	return ok && slices.ContainsFunc(owned, func(o string) bool { return isSubresource(o, rbacv1.ResourceAll, sub) })
}

// mergeVerbs merges the atoms that differ only in their verb, keeping the
// first one's place.
func mergeVerbs(atoms []rbacv1.PolicyRule) []rbacv1.PolicyRule {
	type key struct{ group, resource, name, url string }
	var out []rbacv1.PolicyRule
	at := map[key]int{}
	for _, r := range atoms {
		k := key{first(r.APIGroups), first(r.Resources), first(r.ResourceNames), first(r.NonResourceURLs)}
		if i, ok := at[k]; ok {
			out[i].Verbs = append(out[i].Verbs, r.Verbs...)
			continue
		}
		at[k] = len(out)
		r.Verbs = slices.Clone(r.Verbs)
		out = append(out, r)
	}
	return out
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// EscalateAllowed reports whether authz lets u use the escalate verb on
// the role being written (kind "Role" in namespace, or "ClusterRole"): one
// who may, may write rules it does not hold, as in Kubernetes. Pass the API
// server's whole authorizer chain, so that admins pass.
func EscalateAllowed(ctx context.Context, authz authorizer.UnconditionalAuthorizer, u user.Info, kind, namespace, name string) bool {
	return roleVerbAllowed(ctx, authz, u, "escalate", rbacv1.GroupName, kind, namespace, name)
}

// BindAllowed reports whether authz lets u use the bind verb on the role
// ref names, in the namespace of the binding being written ("" for a
// ClusterRoleBinding): one who may, may bind it without holding its rules,
// as in Kubernetes. Pass the API server's whole authorizer chain.
func BindAllowed(ctx context.Context, authz authorizer.UnconditionalAuthorizer, u user.Info, bindingNamespace string, ref rbacv1.RoleRef) bool {
	return roleVerbAllowed(ctx, authz, u, "bind", ref.APIGroup, ref.Kind, bindingNamespace, ref.Name)
}

func roleVerbAllowed(ctx context.Context, authz authorizer.UnconditionalAuthorizer, u user.Info, verb, group, kind, namespace, name string) bool {
	var resource string
	switch kind {
	case "Role":
		resource = "roles"
	case "ClusterRole":
		resource = "clusterroles"
	default:
		return false
	}
	// As in Kubernetes, an error beside an Allow does not undo it.
	d, _, _ := authz.Authorize(ctx, authorizer.AttributesRecord{
		User:            u,
		Verb:            verb,
		Namespace:       namespace,
		APIGroup:        group,
		Resource:        resource,
		Name:            name,
		ResourceRequest: true,
	})
	return d == authorizer.DecisionAllow
}
