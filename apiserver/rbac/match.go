package rbac

import (
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apiserver/pkg/authorization/authorizer"
)

// request is what rules are matched against, read once from the
// attributes rather than through the interface for every rule.
type request struct {
	resource    bool // a resource request, else a non-resource URL
	verb        string
	group       string
	kind        string // the resource
	subresource string
	name        string
	path        string
}

func requestOf(a authorizer.Attributes) request {
	return request{
		resource:    a.IsResourceRequest(),
		verb:        a.GetVerb(),
		group:       a.GetAPIGroup(),
		kind:        a.GetResource(),
		subresource: a.GetSubresource(),
		name:        a.GetName(),
		path:        a.GetPath(),
	}
}

// allows reports whether rule permits r. A resource rule never permits a
// non-resource request and the other way round.
func (r *request) allows(rule *rbacv1.PolicyRule) bool {
	if !matchesOrAll(rule.Verbs, r.verb) {
		return false
	}
	if !r.resource {
		return urlMatches(rule.NonResourceURLs, r.path)
	}
	return matchesOrAll(rule.APIGroups, r.group) &&
		r.resourceMatches(rule.Resources) &&
		(len(rule.ResourceNames) == 0 || slices.Contains(rule.ResourceNames, r.name))
}

// resourceMatches reports whether one of resources is "*", the requested
// resource (with its subresource as "resource/subresource"), or, for a
// subresource, "*/subresource".
func (r *request) resourceMatches(resources []string) bool {
	for _, res := range resources {
		switch {
		case res == rbacv1.ResourceAll:
			return true
		case r.subresource == "":
			if res == r.kind {
				return true
			}
		case isSubresource(res, r.kind, r.subresource), isSubresource(res, rbacv1.ResourceAll, r.subresource):
			return true
		}
	}
	return false
}

// isSubresource reports whether s is resource+"/"+sub, without building it.
func isSubresource(s, resource, sub string) bool {
	return len(s) == len(resource)+1+len(sub) &&
		strings.HasPrefix(s, resource) && s[len(resource)] == '/' && strings.HasSuffix(s, sub)
}

func matchesOrAll(set []string, s string) bool {
	for _, e := range set {
		if e == s || e == "*" {
			return true
		}
	}
	return false
}

// urlMatches reports whether one of urls is path or, ending in "*", a
// prefix of it ("*" alone matches every path).
func urlMatches(urls []string, path string) bool {
	for _, u := range urls {
		if urlCovers(u, path) {
			return true
		}
	}
	return false
}

// urlCovers reports whether the rule URL u takes in path, which may itself
// end in "*" (when one rule is checked against another).
func urlCovers(u, path string) bool {
	if u == path {
		return true
	}
	return strings.HasSuffix(u, "*") && strings.HasPrefix(path, strings.TrimRight(u, "*"))
}
