package rbac

import (
	"context"
	"errors"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
)

func rule(groups, resources, verbs []string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{APIGroups: groups, Resources: resources, Verbs: verbs}
}

func urlRule(urls, verbs []string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{NonResourceURLs: urls, Verbs: verbs}
}

func named(r rbacv1.PolicyRule, names ...string) rbacv1.PolicyRule {
	r.ResourceNames = names
	return r
}

func list(s ...string) []string { return s }

func TestUncovered(t *testing.T) {
	all := list("*")
	tests := []struct {
		name      string
		owned     []rbacv1.PolicyRule
		requested []rbacv1.PolicyRule
		missing   []string // ruleString of each uncovered atom
	}{
		{"same rule is covered", []rbacv1.PolicyRule{rule(list(skiff), list("workloads"), list("get", "list"))},
			[]rbacv1.PolicyRule{rule(list(skiff), list("workloads"), list("get", "list"))}, nil},
		{"requested rule split over two owned rules is covered", []rbacv1.PolicyRule{rule(list(skiff), list("workloads"), list("get")), rule(list(skiff), list("workloads"), list("list"))},
			[]rbacv1.PolicyRule{rule(list(skiff), list("workloads"), list("get", "list"))}, nil},
		{"only the missing verb is reported", []rbacv1.PolicyRule{rule(list(skiff), list("workloads"), list("get"))},
			[]rbacv1.PolicyRule{rule(list(skiff), list("workloads"), list("get", "delete"))}, list(`{APIGroups:["skiff.dev"], Resources:["workloads"], Verbs:["delete"]}`)},
		{"* verbs cover any verb", []rbacv1.PolicyRule{rule(list(skiff), list("workloads"), all)},
			[]rbacv1.PolicyRule{rule(list(skiff), list("workloads"), list("escalate"))}, nil},
		{"* verb is covered only by *", []rbacv1.PolicyRule{rule(list(skiff), list("workloads"), readWriteVerbs())},
			[]rbacv1.PolicyRule{rule(list(skiff), list("workloads"), all)}, list(`{APIGroups:["skiff.dev"], Resources:["workloads"], Verbs:["*"]}`)},
		{"* group covers any group", []rbacv1.PolicyRule{rule(all, list("workloads"), list("get"))},
			[]rbacv1.PolicyRule{rule(list(skiff, ""), list("workloads"), list("get"))}, nil},
		{"* group is covered only by *", []rbacv1.PolicyRule{rule(list(skiff), list("workloads"), list("get"))},
			[]rbacv1.PolicyRule{rule(all, list("workloads"), list("get"))}, list(`{APIGroups:["*"], Resources:["workloads"], Verbs:["get"]}`)},
		{"* resource covers resources and subresources", []rbacv1.PolicyRule{rule(list(skiff), all, list("get"))},
			[]rbacv1.PolicyRule{rule(list(skiff), list("workloads", "workloads/scale", "*/status"), list("get"))}, nil},
		{"* resource is covered only by *", []rbacv1.PolicyRule{rule(list(skiff), list("workloads", "instances", "nodes"), list("get"))},
			[]rbacv1.PolicyRule{rule(list(skiff), all, list("get"))}, list(`{APIGroups:["skiff.dev"], Resources:["*"], Verbs:["get"]}`)},
		{"resource does not cover its subresources", []rbacv1.PolicyRule{rule(list(skiff), list("workloads"), list("update"))},
			[]rbacv1.PolicyRule{rule(list(skiff), list("workloads/scale"), list("update"))}, list(`{APIGroups:["skiff.dev"], Resources:["workloads/scale"], Verbs:["update"]}`)},
		{"*/sub covers that subresource of any resource", []rbacv1.PolicyRule{rule(list(skiff), list("*/status"), list("update"))},
			[]rbacv1.PolicyRule{rule(list(skiff), list("workloads/status", "nodes/status", "*/status"), list("update"))}, nil},
		{"*/sub does not cover the resource", []rbacv1.PolicyRule{rule(list(skiff), list("*/status"), list("update"))},
			[]rbacv1.PolicyRule{rule(list(skiff), list("workloads"), list("update"))}, list(`{APIGroups:["skiff.dev"], Resources:["workloads"], Verbs:["update"]}`)},
		{"resource/sub does not cover */sub", []rbacv1.PolicyRule{rule(list(skiff), list("workloads/status"), list("update"))},
			[]rbacv1.PolicyRule{rule(list(skiff), list("*/status"), list("update"))}, list(`{APIGroups:["skiff.dev"], Resources:["*/status"], Verbs:["update"]}`)},
		{"rule without names covers named objects", []rbacv1.PolicyRule{rule(list(""), list("configmaps"), list("get"))},
			[]rbacv1.PolicyRule{named(rule(list(""), list("configmaps"), list("get")), "app-config")}, nil},
		{"rule with names covers those names", []rbacv1.PolicyRule{named(rule(list(""), list("configmaps"), list("get")), "a", "b")},
			[]rbacv1.PolicyRule{named(rule(list(""), list("configmaps"), list("get")), "b")}, nil},
		{"rule with names covers no other name", []rbacv1.PolicyRule{named(rule(list(""), list("configmaps"), list("get")), "a")},
			[]rbacv1.PolicyRule{named(rule(list(""), list("configmaps"), list("get")), "a", "b")}, list(`{APIGroups:[""], Resources:["configmaps"], ResourceNames:["b"], Verbs:["get"]}`)},
		{"rule with names does not cover every name", []rbacv1.PolicyRule{named(rule(list(""), list("configmaps"), list("get")), "a")},
			[]rbacv1.PolicyRule{rule(list(""), list("configmaps"), list("get"))}, list(`{APIGroups:[""], Resources:["configmaps"], Verbs:["get"]}`)},
		{"URL with * covers URLs below it", []rbacv1.PolicyRule{urlRule(list("/logs/*"), list("get"))},
			[]rbacv1.PolicyRule{urlRule(list("/logs/today", "/logs/*", "/logs/a/*"), list("get"))}, nil},
		{"URL with * covers not a shorter prefix", []rbacv1.PolicyRule{urlRule(list("/logs/*"), list("get"))},
			[]rbacv1.PolicyRule{urlRule(list("/logs", "/*"), list("get"))}, list(`{NonResourceURLs:["/logs"], Verbs:["get"]}`, `{NonResourceURLs:["/*"], Verbs:["get"]}`)},
		{"URL * covers every URL", []rbacv1.PolicyRule{urlRule(all, all)},
			[]rbacv1.PolicyRule{urlRule(list("/metrics", "*"), list("get", "post"))}, nil},
		{"resource rule covers no URL", []rbacv1.PolicyRule{rule(all, all, all)},
			[]rbacv1.PolicyRule{urlRule(list("/metrics"), list("get"))}, list(`{NonResourceURLs:["/metrics"], Verbs:["get"]}`)},
		{"URL rule covers no resource", []rbacv1.PolicyRule{urlRule(all, all)},
			[]rbacv1.PolicyRule{rule(list(""), list("secrets"), list("get"))}, list(`{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}`)},
		{"nothing requested is covered", nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, r := range Uncovered(tt.owned, tt.requested) {
				got = append(got, ruleString(r))
			}
			if strings.Join(got, "\n") != strings.Join(tt.missing, "\n") {
				t.Errorf("missing:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.missing, "\n"))
			}
		})
	}
}

func TestConfirmNoEscalation(t *testing.T) {
	src := newSource(
		Builtin(),
		newClusterRoleBinding("viewers", ViewerRole, userSubject("val")),
		newClusterRoleBinding("operators", OperatorRole, userSubject("otto")),
		newClusterRoleBinding("admins", AdminRole, userSubject("ada")),
		newRoleBinding("a", "bob-operates", "ClusterRole", OperatorRole, userSubject("bob")),
	)
	a := New(src)
	operatorRules := func() []rbacv1.PolicyRule { r, _ := src.GetClusterRole(OperatorRole); return r.Rules }()
	tests := []struct {
		name      string
		user      string
		namespace string
		rules     []rbacv1.PolicyRule
		allowed   bool
	}{
		{"viewer may not grant operator rules", "val", "a", operatorRules, false},
		{"viewer may grant what it holds", "val", "a", []rbacv1.PolicyRule{rule(list(skiff), list("workloads", "workloads/scale"), list("get", "list"))}, true},
		{"admin may grant operator rules", "ada", "", operatorRules, true},
		{"admin may grant everything", "ada", "", []rbacv1.PolicyRule{rule(list("*"), list("*"), list("*")), urlRule(list("*"), list("*"))}, true},
		{"operator may grant operator rules", "otto", "", operatorRules, true},
		{"operator may not grant * verbs", "otto", "a", []rbacv1.PolicyRule{rule(list(skiff), list("workloads"), list("*"))}, false},
		{"operator may not grant RBAC", "otto", "a", []rbacv1.PolicyRule{rule(list(rbacG), list("rolebindings"), list("create"))}, false},
		{"operator may not grant */scale", "otto", "a", []rbacv1.PolicyRule{rule(list(skiff), list("*/scale"), list("update"))}, false},
		{"operator may grant one named secret", "otto", "a", []rbacv1.PolicyRule{named(rule(list(""), list("secrets"), list("get")), "db")}, true},
		{"RoleBinding holder may grant in its namespace", "bob", "a", operatorRules, true},
		{"RoleBinding holder may not grant in another namespace", "bob", "b", operatorRules, false},
		{"RoleBinding holder may not grant cluster-wide", "bob", "", operatorRules, false},
		{"anyone may grant nothing", "nobody", "", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := a.ConfirmNoEscalation(keyUser(tt.user), tt.namespace, tt.rules)
			var escalation *EscalationError
			switch {
			case tt.allowed && err != nil:
				t.Errorf("refused: %v", err)
			case !tt.allowed && !errors.As(err, &escalation):
				t.Errorf("error %v, want an *EscalationError", err)
			}
		})
	}
}

func TestEscalationErrorSaysWhatIsMissing(t *testing.T) {
	a := New(newSource(Builtin(), newClusterRoleBinding("viewers", ViewerRole, userSubject("val"))))
	err := a.ConfirmNoEscalation(keyUser("val"), "a", []rbacv1.PolicyRule{
		rule(list(skiff), list("workloads"), list("get", "create", "delete")),
		urlRule(list("/metrics"), list("get")),
	})
	want := `user "val" (groups=["skiff:keys" "system:authenticated"]) is attempting to grant RBAC permissions not currently held:
{APIGroups:["skiff.dev"], Resources:["workloads"], Verbs:["create" "delete"]}
{NonResourceURLs:["/metrics"], Verbs:["get"]}`
	if err == nil || err.Error() != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
}

func TestEscalateAndBindAllowed(t *testing.T) {
	a := New(newSource(
		Builtin(),
		newClusterRole("role-admin",
			rbacv1.PolicyRule{APIGroups: list(rbacG), Resources: list("roles"), Verbs: list("escalate")},
			rbacv1.PolicyRule{APIGroups: list(rbacG), Resources: list("clusterroles"), ResourceNames: list(ViewerRole), Verbs: list("bind")},
		),
		newRoleBinding("a", "role-admin", "ClusterRole", "role-admin", userSubject("rita")),
		newClusterRoleBinding("admins", AdminRole, userSubject("ada")),
	))
	ctx := context.Background()
	rita, ada, val := keyUser("rita"), keyUser("ada"), keyUser("val")
	ref := func(kind, name string) rbacv1.RoleRef {
		return rbacv1.RoleRef{APIGroup: rbacG, Kind: kind, Name: name}
	}
	tests := []struct {
		name    string
		allowed bool
		want    bool
	}{
		{"escalate on roles in the namespace", EscalateAllowed(ctx, a, rita, "Role", "a", "deployer"), true},
		{"escalate on roles elsewhere", EscalateAllowed(ctx, a, rita, "Role", "b", "deployer"), false},
		{"escalate on roles is not on clusterroles", EscalateAllowed(ctx, a, rita, "ClusterRole", "", "x"), false},
		{"bind on the named ClusterRole in the namespace", BindAllowed(ctx, a, rita, "a", ref("ClusterRole", ViewerRole)), true},
		{"bind on another ClusterRole", BindAllowed(ctx, a, rita, "a", ref("ClusterRole", OperatorRole)), false},
		{"bind in a ClusterRoleBinding", BindAllowed(ctx, a, rita, "", ref("ClusterRole", ViewerRole)), false},
		{"admin may escalate", EscalateAllowed(ctx, a, ada, "ClusterRole", "", "x"), true},
		{"admin may bind", BindAllowed(ctx, a, ada, "", ref("ClusterRole", AdminRole)), true},
		{"unknown kind", BindAllowed(ctx, a, ada, "", ref("Widget", "x")), false},
		{"no binding, no escalate", EscalateAllowed(ctx, a, val, "Role", "a", "x"), false},
	}
	for _, tt := range tests {
		if tt.allowed != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, tt.allowed, tt.want)
		}
	}
}

func TestRoleRefRules(t *testing.T) {
	a := New(newSource(Builtin(), newRole("a", "deployer", rule(list(skiff), list("workloads"), list("create")))))
	if rules, err := a.RoleRefRules(rbacv1.RoleRef{APIGroup: rbacG, Kind: "Role", Name: "deployer"}, "a"); err != nil || len(rules) != 1 {
		t.Errorf("Role in its namespace: %v, %v", rules, err)
	}
	if rules, err := a.RoleRefRules(rbacv1.RoleRef{APIGroup: rbacG, Kind: "ClusterRole", Name: ViewerRole}, "a"); err != nil || len(rules) == 0 {
		t.Errorf("ClusterRole: %v, %v", rules, err)
	}
	for _, tt := range []struct {
		ref       rbacv1.RoleRef
		namespace string
	}{
		{rbacv1.RoleRef{APIGroup: rbacG, Kind: "Role", Name: "deployer"}, "b"},
		{rbacv1.RoleRef{APIGroup: rbacG, Kind: "Role", Name: "deployer"}, ""},
		{rbacv1.RoleRef{APIGroup: rbacG, Kind: "ClusterRole", Name: "gone"}, ""},
	} {
		if _, err := a.RoleRefRules(tt.ref, tt.namespace); !errors.Is(err, ErrRoleNotFound) {
			t.Errorf("%s %q in %q: error %v, want ErrRoleNotFound", tt.ref.Kind, tt.ref.Name, tt.namespace, err)
		}
	}
}
