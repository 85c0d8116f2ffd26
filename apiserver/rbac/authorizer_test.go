package rbac

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

const (
	skiff = skiffv1alpha1.GroupName
	rbacG = rbacv1.GroupName
	authz = "authorization.k8s.io"
	coord = "coordination.k8s.io"
)

// TestBuiltinRolesAuthorize checks what each built-in role lets its
// holder do, bound by a ClusterRoleBinding. A resource starting with "/"
// is a non-resource URL.
func TestBuiltinRolesAuthorize(t *testing.T) {
	type check struct {
		verb, group, resource, subresource, namespace string
		allowed                                       bool
	}
	tests := map[string][]check{
		ViewerRole: {
			{"list", skiff, "workloads", "", "default", true},
			{"watch", skiff, "workloads", "", "", true},
			{"get", skiff, "workloads", "scale", "default", true},
			{"get", skiff, "instances", "log", "default", true},
			{"list", skiff, "nodes", "", "", true},
			{"get", "", "namespaces", "", "", true},
			{"list", "", "events", "", "default", true},
			{"get", "", "configmaps", "", "default", true},
			{"list", coord, "leases", "", "default", true},
			{"get", "", "secrets", "", "default", false},
			{"list", "", "secrets", "", "default", false},
			{"create", skiff, "workloads", "", "default", false},
			{"update", skiff, "workloads", "scale", "default", false},
			{"create", skiff, "instances", "exec", "default", false},
			{"get", skiff, "nodes", "metrics", "", false},
			{"list", rbacG, "roles", "", "default", false},
			{"list", rbacG, "clusterrolebindings", "", "", false},
			{"get", "", "/apis", "", "", false}, // discovery comes from skiff:discovery
		},
		OperatorRole: {
			{"create", "", "secrets", "", "default", true},
			{"delete", skiff, "workloads", "", "default", true},
			{"patch", skiff, "workloads", "scale", "default", true},
			{"update", skiff, "workloads", "status", "default", true},
			{"create", skiff, "instances", "exec", "default", true},
			{"get", skiff, "instances", "log", "default", true},
			{"deletecollection", "", "events", "", "default", true},
			{"update", "", "configmaps", "", "default", true},
			{"list", skiff, "nodes", "", "", true},
			{"get", skiff, "nodes", "metrics", "", true},
			{"watch", "", "namespaces", "", "", true},
			{"get", coord, "leases", "", "kube-system", true},
			{"delete", skiff, "nodes", "", "", false},
			{"update", skiff, "nodes", "status", "", false},
			{"create", "", "namespaces", "", "", false},
			{"update", coord, "leases", "", "default", false},
			{"update", skiff, "instances", "status", "default", false},
			{"create", skiff, "instances", "binding", "default", false},
			{"create", rbacG, "rolebindings", "", "default", false},
			{"get", rbacG, "roles", "", "default", false},
			{"impersonate", "", "users", "", "", false},
		},
		AdminRole: {
			{"delete", skiff, "nodes", "", "", true},
			{"create", rbacG, "clusterrolebindings", "", "", true},
			{"escalate", rbacG, "clusterroles", "", "", true},
			{"get", "", "secrets", "", "default", true},
			{"update", skiff, "instances", "binding", "default", true},
			{"frobnicate", "example.com", "widgets", "knobs", "x", true},
			{"get", "", "/metrics", "", "", true},
			{"post", "", "/anything/at/all", "", "", true},
		},
		MCPRole: {
			{"impersonate", "", "users", "", "", true},
			{"impersonate", "", "groups", "", "", false},
			{"impersonate", "", "serviceaccounts", "", "default", false},
			{"get", "", "/api", "", "", true},
			{"get", "", "/apis/skiff.dev/v1alpha1", "", "", true},
			{"get", "", "/openapi/v3", "", "", true},
			{"get", "", "/version", "", "", true},
			{"get", "", "/openapi", "", "", false},
			{"get", "", "/healthz", "", "", false},
			{"list", skiff, "workloads", "", "default", false},
		},
		DiscoveryRole: {
			{"get", "", "/api", "", "", true},
			{"get", "", "/api/v1", "", "", true},
			{"get", "", "/apis", "", "", true},
			{"get", "", "/apis/skiff.dev", "", "", true},
			{"get", "", "/openapi", "", "", true},
			{"get", "", "/openapi/v3/apis/skiff.dev/v1alpha1", "", "", true},
			{"get", "", "/version", "", "", true},
			{"get", "", "/healthz", "", "", true},
			{"get", "", "/livez", "", "", true},
			{"get", "", "/readyz", "", "", true},
			{"create", authz, "selfsubjectaccessreviews", "", "", true},
			{"create", authz, "selfsubjectrulesreviews", "", "", true},
			{"post", "", "/api", "", "", false},
			{"get", "", "/metrics", "", "", false},
			{"get", "", "/readyz/etcd", "", "", false},
			{"get", "", "/apiextras", "", "", false},
			{"create", authz, "subjectaccessreviews", "", "", false},
			{"list", skiff, "workloads", "", "default", false},
		},
	}
	var objs []any
	for role := range tests {
		objs = append(objs, newClusterRoleBinding("holds-"+role, role, userSubject("holder-of-"+role)))
	}
	a := New(newSource(append(objs, Builtin())...))
	for _, role := range slices.Sorted(maps.Keys(tests)) {
		for _, c := range tests[role] {
			u := &user.DefaultInfo{Name: "holder-of-" + role}
			attrs := resourceRequest(u, c.verb, c.group, c.resource, c.subresource, c.namespace, "")
			what := c.verb + " " + c.resource
			if strings.HasPrefix(c.resource, "/") {
				attrs = urlRequest(u, c.verb, c.resource)
			}
			if c.subresource != "" {
				what += "/" + c.subresource
			}
			if c.group != "" {
				what += "." + c.group
			}
			if c.namespace != "" {
				what += " in " + c.namespace
			}
			want := map[bool]string{true: "may", false: "may not"}[c.allowed]
			t.Run(role+" "+want+" "+what, func(t *testing.T) {
				assertDecision(t, a, attrs, c.allowed)
			})
		}
	}
}

func assertDecision(t *testing.T, a *Authorizer, attrs authorizer.Attributes, allowed bool) {
	t.Helper()
	d, reason, err := a.Authorize(context.Background(), attrs)
	if err != nil {
		t.Fatalf("Authorize: %v", err)
	}
	want := authorizer.DecisionNoOpinion
	if allowed {
		want = authorizer.DecisionAllow
	}
	if d != want {
		t.Errorf("decision %v (reason %q), want %v", d, reason, want)
	}
}

// bindingsSource is a cluster with one binding per behaviour under test.
func bindingsSource() *fakeSource {
	return newSource(
		Builtin(),
		newRole("a", "deployer", rbacv1.PolicyRule{APIGroups: []string{skiff}, Resources: []string{"workloads"}, Verbs: []string{"get", "create"}}),
		newRoleBinding("a", "alice-deploys", "Role", "deployer", userSubject("alice")),
		newRoleBinding("a", "bob-operates", "ClusterRole", OperatorRole, userSubject("bob")),
		newClusterRoleBinding("team-views", ViewerRole, groupSubject("team")),
		newClusterRoleBinding("bot-views", ViewerRole, serviceAccountSubject("a", "bot")),
		newRoleBinding("b", "builder-operates", "ClusterRole", OperatorRole, serviceAccountSubject("", "builder")),
		newClusterRole("app-config-reader", rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"app-config"}, Verbs: []string{"get", "list", "create"}}),
		newClusterRole("log-reader", rbacv1.PolicyRule{NonResourceURLs: []string{"/logs/*", "/debug"}, Verbs: []string{"get"}}),
		newClusterRoleBinding("dave-reads-app-config", "app-config-reader", userSubject("dave")),
		newClusterRoleBinding("dave-reads-logs", "log-reader", userSubject("dave")),
		newClusterRole("status-writer", rbacv1.PolicyRule{APIGroups: []string{rbacv1.APIGroupAll}, Resources: []string{"*/status"}, Verbs: []string{"update"}}),
		newClusterRole("subresource-star", rbacv1.PolicyRule{APIGroups: []string{skiff}, Resources: []string{"workloads/*"}, Verbs: []string{"get"}}),
		newClusterRoleBinding("erin-writes-status", "status-writer", userSubject("erin")),
		newClusterRoleBinding("erin-star", "subresource-star", userSubject("erin")),
		newClusterRoleBinding("carol-orphan", "gone", userSubject("carol")),
		newRoleBinding("a", "carol-orphan", "Role", "gone", userSubject("carol")),
	)
}

func TestAuthorizeBindings(t *testing.T) {
	a := New(bindingsSource())
	alice, bob, carol, dave, erin := keyUser("alice"), keyUser("bob"), keyUser("carol"), keyUser("dave"), keyUser("erin")
	teamMember, outsider := keyUser("frank", "team"), keyUser("grace", "other-team")
	bot, otherBot := &user.DefaultInfo{Name: "system:serviceaccount:a:bot"}, &user.DefaultInfo{Name: "system:serviceaccount:b:bot"}
	builder, builderElsewhere := &user.DefaultInfo{Name: "system:serviceaccount:b:builder"}, &user.DefaultInfo{Name: "system:serviceaccount:a:builder"}
	tests := []struct {
		name    string
		attrs   authorizer.AttributesRecord
		allowed bool
	}{
		{"RoleBinding to a Role allows in its namespace", resourceRequest(alice, "create", skiff, "workloads", "", "a", ""), true},
		{"RoleBinding to a Role allows nothing in another namespace", resourceRequest(alice, "create", skiff, "workloads", "", "b", ""), false},
		{"RoleBinding to a Role allows nothing cluster-wide", resourceRequest(alice, "get", skiff, "workloads", "", "", ""), false},
		{"RoleBinding to a Role allows only its rules", resourceRequest(alice, "delete", skiff, "workloads", "", "a", "web"), false},
		{"RoleBinding to a ClusterRole allows in its namespace", resourceRequest(bob, "get", "", "secrets", "", "a", "db"), true},
		{"RoleBinding to a ClusterRole allows nothing in another namespace", resourceRequest(bob, "get", "", "secrets", "", "b", "db"), false},
		{"RoleBinding to a ClusterRole allows no cluster-scoped resource", resourceRequest(bob, "list", skiff, "nodes", "", "", ""), false},
		{"Group subject matches a member", resourceRequest(teamMember, "list", skiff, "workloads", "", "b", ""), true},
		{"Group subject does not match others", resourceRequest(outsider, "list", skiff, "workloads", "", "b", ""), false},
		{"User subject does not match a group of that name", resourceRequest(keyUser("x", "alice"), "create", skiff, "workloads", "", "a", ""), false},
		{"ServiceAccount subject matches its service account", resourceRequest(bot, "list", skiff, "nodes", "", "", ""), true},
		{"ServiceAccount subject does not match the same name elsewhere", resourceRequest(otherBot, "list", skiff, "nodes", "", "", ""), false},
		{"ServiceAccount subject without namespace is in the RoleBinding's", resourceRequest(builder, "create", skiff, "workloads", "", "b", ""), true},
		{"ServiceAccount subject without namespace matches no other namespace's", resourceRequest(builderElsewhere, "create", skiff, "workloads", "", "b", ""), false},
		{"resourceNames allow the named object", resourceRequest(dave, "get", "", "configmaps", "", "x", "app-config"), true},
		{"resourceNames allow no other object", resourceRequest(dave, "get", "", "configmaps", "", "x", "other"), false},
		{"resourceNames allow no list", resourceRequest(dave, "list", "", "configmaps", "", "x", ""), false},
		{"resourceNames allow no create without a name", resourceRequest(dave, "create", "", "configmaps", "", "x", ""), false},
		{"non-resource URL with * allows below its prefix", urlRequest(dave, "get", "/logs/today"), true},
		{"non-resource URL with * does not allow its parent", urlRequest(dave, "get", "/logs"), false},
		{"non-resource URL with * does not allow a longer sibling", urlRequest(dave, "get", "/logsx"), false},
		{"non-resource URL without * allows only itself", urlRequest(dave, "get", "/debug/pprof"), false},
		{"non-resource URL allows only its verbs", urlRequest(dave, "post", "/logs/today"), false},
		{"resource rule allows no non-resource URL", urlRequest(dave, "get", "/configmaps"), false},
		{"*/subresource allows that subresource of any resource", resourceRequest(erin, "update", skiff, "workloads", "status", "a", "web"), true},
		{"*/subresource allows not the resource itself", resourceRequest(erin, "update", skiff, "workloads", "", "a", "web"), false},
		{"resource/* is not a wildcard, as in Kubernetes", resourceRequest(erin, "get", skiff, "workloads", "scale", "a", "web"), false},
		{"binding to a missing ClusterRole allows nothing", resourceRequest(carol, "get", skiff, "workloads", "", "", ""), false},
		{"binding to a missing Role allows nothing", resourceRequest(carol, "get", skiff, "workloads", "", "a", ""), false},
		{"no user, no opinion", authorizer.AttributesRecord{Verb: "get", Path: "/api"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertDecision(t, a, tt.attrs, tt.allowed)
		})
	}
}

func TestAuthorizeReasons(t *testing.T) {
	a := New(bindingsSource())
	ctx := context.Background()

	_, reason, _ := a.Authorize(ctx, resourceRequest(keyUser("bob"), "get", "", "secrets", "", "a", "db"))
	if want := `RBAC: allowed by RoleBinding "a/bob-operates" of ClusterRole "skiff:operator" to User "bob"`; reason != want {
		t.Errorf("allowed reason %q, want %q", reason, want)
	}
	_, reason, _ = a.Authorize(ctx, resourceRequest(keyUser("carol"), "get", skiff, "workloads", "", "a", ""))
	for _, want := range []string{`ClusterRole "gone": role not found`, `RoleBinding "a/carol-orphan" of Role "gone"`} {
		if !strings.Contains(reason, want) {
			t.Errorf("reason for a binding to a missing role %q does not say %q", reason, want)
		}
	}
}

func TestRulesFor(t *testing.T) {
	a := New(bindingsSource())
	tests := []struct {
		name      string
		user      user.Info
		namespace string
		want      []string // ruleString of each rule
	}{
		{"RoleBinding's rules in its namespace", keyUser("alice"), "a", []string{`{APIGroups:["skiff.dev"], Resources:["workloads"], Verbs:["get" "create"]}`}},
		{"no RoleBinding's rules cluster-wide", keyUser("alice"), "", nil},
		{"no RoleBinding's rules in another namespace", keyUser("alice"), "b", nil},
		{"ClusterRoleBinding's rules cluster-wide", keyUser("dave"), "", []string{
			`{APIGroups:[""], Resources:["configmaps"], ResourceNames:["app-config"], Verbs:["get" "list" "create"]}`,
			`{NonResourceURLs:["/logs/*" "/debug"], Verbs:["get"]}`,
		}},
		{"missing roles contribute nothing", keyUser("carol"), "a", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, r := range a.RulesFor(tt.user, tt.namespace) {
				got = append(got, ruleString(r))
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("rules:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestRulesReviewSplitsResourceAndNonResourceRules(t *testing.T) {
	a := New(bindingsSource())
	status := a.RulesReview(keyUser("dave"), "x")
	if len(status.ResourceRules) != 1 || status.ResourceRules[0].ResourceNames[0] != "app-config" {
		t.Errorf("resource rules %+v, want the app-config reader's", status.ResourceRules)
	}
	if len(status.NonResourceRules) != 1 || status.NonResourceRules[0].NonResourceURLs[0] != "/logs/*" {
		t.Errorf("non-resource rules %+v, want the log reader's", status.NonResourceRules)
	}
	if status.EvaluationError != "" || status.Incomplete {
		t.Errorf("evaluation error %q, incomplete %v; want neither", status.EvaluationError, status.Incomplete)
	}

	status = a.RulesReview(keyUser("carol"), "a")
	if len(status.ResourceRules)+len(status.NonResourceRules) != 0 || !strings.Contains(status.EvaluationError, "role not found") {
		t.Errorf("review for bindings to missing roles: %+v, want no rules and an evaluation error", status)
	}
}

// BenchmarkAuthorize decides among 1,000 ClusterRoleBindings, each to one
// user, and 1,000 RoleBindings, 10 in each of 100 namespaces.
func BenchmarkAuthorize(b *testing.B) {
	src := newSource(Builtin(), BuiltinBindings())
	for i := range 1000 {
		role := []string{ViewerRole, OperatorRole}[i%2]
		src.add(newClusterRoleBinding(fmt.Sprintf("user-%d", i), role, userSubject(fmt.Sprintf("user-%d", i)), groupSubject(fmt.Sprintf("team-%d", i))))
		ns := fmt.Sprintf("ns-%d", i%100)
		src.add(newRoleBinding(ns, fmt.Sprintf("deployer-%d", i), "ClusterRole", OperatorRole, userSubject(fmt.Sprintf("deployer-%d", i))))
	}
	a := New(src)
	ctx := context.Background()
	u := keyUser("user-500") // a viewer, bound half-way down the list
	for _, bc := range []struct {
		name    string
		attrs   authorizer.AttributesRecord
		allowed authorizer.Decision
	}{
		{"allowed", resourceRequest(u, "list", skiff, "workloads", "", "ns-50", ""), authorizer.DecisionAllow},
		{"denied", resourceRequest(u, "get", "", "secrets", "", "ns-50", "db"), authorizer.DecisionNoOpinion},
	} {
		var attrs authorizer.Attributes = bc.attrs // boxed once, as the API server does per request
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if d, _, _ := a.Authorize(ctx, attrs); d != bc.allowed {
					b.Fatalf("decision %v, want %v", d, bc.allowed)
				}
			}
		})
	}
}
