package rbac

import (
	"fmt"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// errorStrings are errs as "path: type", sorted as returned.
func errorStrings(errs field.ErrorList) string {
	s := make([]string, len(errs))
	for i, e := range errs {
		s[i] = fmt.Sprintf("%s: %s", e.Field, e.Type)
	}
	return strings.Join(s, "; ")
}

func TestValidateRoles(t *testing.T) {
	good := rule(list(skiff), list("workloads"), list("get"))
	tests := []struct {
		name        string
		rules       []rbacv1.PolicyRule
		role        string // errors of a Role
		clusterRole string // errors of a ClusterRole
	}{
		{"resource rule is valid", []rbacv1.PolicyRule{good}, "", ""},
		{"core API group is a group", []rbacv1.PolicyRule{rule(list(""), list("secrets"), list("get"))}, "", ""},
		{"rule without verbs", []rbacv1.PolicyRule{good, rule(list(skiff), list("workloads"), nil)},
			"rules[1].verbs: Required value", "rules[1].verbs: Required value"},
		{"resource rule without apiGroups and resources", []rbacv1.PolicyRule{{Verbs: list("get")}},
			"rules[0].apiGroups: Required value; rules[0].resources: Required value",
			"rules[0].apiGroups: Required value; rules[0].resources: Required value"},
		{"non-resource rule only in a ClusterRole", []rbacv1.PolicyRule{urlRule(list("/healthz"), list("get"))},
			"rules[0].nonResourceURLs: Invalid value", ""},
		{"non-resource rule with resources", []rbacv1.PolicyRule{{NonResourceURLs: list("/healthz"), Resources: list("pods"), Verbs: list("get")}},
			"rules[0].nonResourceURLs: Invalid value; rules[0].nonResourceURLs: Invalid value", "rules[0].nonResourceURLs: Invalid value"},
		{"non-resource rule with resourceNames and no verbs", []rbacv1.PolicyRule{{NonResourceURLs: list("/healthz"), ResourceNames: list("x")}},
			"rules[0].verbs: Required value; rules[0].nonResourceURLs: Invalid value; rules[0].nonResourceURLs: Invalid value",
			"rules[0].verbs: Required value; rules[0].nonResourceURLs: Invalid value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			meta := metav1.ObjectMeta{Name: "r", Namespace: "a"}
			if got := errorStrings(ValidateRole(&rbacv1.Role{ObjectMeta: meta, Rules: tt.rules})); got != tt.role {
				t.Errorf("Role: %q, want %q", got, tt.role)
			}
			if got := errorStrings(ValidateClusterRole(&rbacv1.ClusterRole{ObjectMeta: meta, Rules: tt.rules})); got != tt.clusterRole {
				t.Errorf("ClusterRole: %q, want %q", got, tt.clusterRole)
			}
		})
	}
}

func TestValidateClusterRoleRefusesAggregationRule(t *testing.T) {
	errs := ValidateClusterRole(&rbacv1.ClusterRole{
		AggregationRule: &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"a": "b"}}}},
	})
	if got := errorStrings(errs); got != "aggregationRule: Forbidden" {
		t.Fatalf("errors %q, want aggregationRule: Forbidden", got)
	}
	if !strings.Contains(errs[0].Detail, "aggregationRule is not supported by skiff") {
		t.Errorf("detail %q does not say aggregationRule is not supported by skiff", errs[0].Detail)
	}
}

func TestValidateBindings(t *testing.T) {
	ref := func(group, kind, name string) rbacv1.RoleRef {
		return rbacv1.RoleRef{APIGroup: group, Kind: kind, Name: name}
	}
	clusterRoleRef := ref(rbacG, "ClusterRole", ViewerRole)
	tests := []struct {
		name        string
		ref         rbacv1.RoleRef
		subjects    []rbacv1.Subject
		roleBinding string // errors of a RoleBinding
		cluster     string // errors of a ClusterRoleBinding
	}{
		{"binding of a ClusterRole to a user, group and service account", clusterRoleRef,
			[]rbacv1.Subject{userSubject("alice"), groupSubject("team"), serviceAccountSubject("a", "bot")}, "", ""},
		{"no subjects", clusterRoleRef, nil, "", ""},
		{"Role ref", ref(rbacG, "Role", "deployer"), nil, "", "roleRef.kind: Unsupported value"},
		{"roleRef in another API group", ref("example.com", "ClusterRole", "x"), nil, "roleRef.apiGroup: Unsupported value", "roleRef.apiGroup: Unsupported value"},
		{"roleRef without apiGroup", ref("", "ClusterRole", "x"), nil, "roleRef.apiGroup: Unsupported value", "roleRef.apiGroup: Unsupported value"},
		{"roleRef of another kind", ref(rbacG, "Widget", "x"), nil, "roleRef.kind: Unsupported value", "roleRef.kind: Unsupported value"},
		{"roleRef without name", ref(rbacG, "ClusterRole", ""), nil, "roleRef.name: Required value", "roleRef.name: Required value"},
		{"roleRef name with a slash", ref(rbacG, "ClusterRole", "a/b"), nil, "roleRef.name: Invalid value", "roleRef.name: Invalid value"},
		{"subject of another kind", clusterRoleRef, []rbacv1.Subject{{Kind: "Robot", Name: "r"}},
			"subjects[0].kind: Unsupported value", "subjects[0].kind: Unsupported value"},
		{"subject without name", clusterRoleRef, []rbacv1.Subject{userSubject("alice"), userSubject("")},
			"subjects[1].name: Required value", "subjects[1].name: Required value"},
		{"User subject without apiGroup", clusterRoleRef, []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: "alice"}},
			"subjects[0].apiGroup: Unsupported value", "subjects[0].apiGroup: Unsupported value"},
		{"Group subject in another apiGroup", clusterRoleRef, []rbacv1.Subject{{APIGroup: "example.com", Kind: rbacv1.GroupKind, Name: "team"}},
			"subjects[0].apiGroup: Unsupported value", "subjects[0].apiGroup: Unsupported value"},
		{"ServiceAccount subject with an apiGroup", clusterRoleRef, []rbacv1.Subject{{APIGroup: rbacG, Kind: rbacv1.ServiceAccountKind, Namespace: "a", Name: "bot"}},
			"subjects[0].apiGroup: Unsupported value", "subjects[0].apiGroup: Unsupported value"},
		{"ServiceAccount subject with an invalid name", clusterRoleRef, []rbacv1.Subject{serviceAccountSubject("a", "Bad_Bot")},
			"subjects[0].name: Invalid value", "subjects[0].name: Invalid value"},
		{"ServiceAccount subject without namespace", clusterRoleRef, []rbacv1.Subject{serviceAccountSubject("", "bot")},
			"", "subjects[0].namespace: Required value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "b"}, RoleRef: tt.ref, Subjects: tt.subjects}
			if got := errorStrings(ValidateRoleBinding(rb)); got != tt.roleBinding {
				t.Errorf("RoleBinding: %q, want %q", got, tt.roleBinding)
			}
			crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "b"}, RoleRef: tt.ref, Subjects: tt.subjects}
			if got := errorStrings(ValidateClusterRoleBinding(crb)); got != tt.cluster {
				t.Errorf("ClusterRoleBinding: %q, want %q", got, tt.cluster)
			}
		})
	}
}

func TestValidateBindingUpdates(t *testing.T) {
	old := newRoleBinding("a", "b", "ClusterRole", ViewerRole, userSubject("alice"))
	tests := []struct {
		name   string
		update func(*rbacv1.RoleBinding)
		want   string
	}{
		{"subjects may change", func(b *rbacv1.RoleBinding) { b.Subjects = append(b.Subjects, groupSubject("team")) }, ""},
		{"roleRef name may not change", func(b *rbacv1.RoleBinding) { b.RoleRef.Name = OperatorRole }, "roleRef: Invalid value"},
		{"roleRef kind may not change", func(b *rbacv1.RoleBinding) { b.RoleRef.Kind = "Role" }, "roleRef: Invalid value"},
		{"an invalid update is invalid", func(b *rbacv1.RoleBinding) { b.Subjects[0].Name = "" }, "subjects[0].name: Required value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rb := old.DeepCopy()
			tt.update(rb)
			errs := ValidateRoleBindingUpdate(rb, old)
			if got := errorStrings(errs); got != tt.want {
				t.Errorf("RoleBinding: %q, want %q", got, tt.want)
			}
			if tt.want == "roleRef: Invalid value" && errs[0].Detail != "cannot change roleRef" {
				t.Errorf("detail %q, want cannot change roleRef", errs[0].Detail)
			}
			oldCluster := &rbacv1.ClusterRoleBinding{ObjectMeta: old.ObjectMeta, RoleRef: old.RoleRef, Subjects: old.Subjects}
			crb := &rbacv1.ClusterRoleBinding{ObjectMeta: rb.ObjectMeta, RoleRef: rb.RoleRef, Subjects: rb.Subjects}
			want := tt.want
			if rb.RoleRef.Kind == "Role" {
				want = "roleRef.kind: Unsupported value; " + want
			}
			if got := errorStrings(ValidateClusterRoleBindingUpdate(crb, oldCluster)); got != want {
				t.Errorf("ClusterRoleBinding: %q, want %q", got, want)
			}
		})
	}
}

func TestSetDefaultsFillsKubernetesDefaults(t *testing.T) {
	rb := &rbacv1.RoleBinding{
		RoleRef: rbacv1.RoleRef{Kind: "Role", Name: "deployer"},
		Subjects: []rbacv1.Subject{
			{Kind: rbacv1.UserKind, Name: "alice"},
			{Kind: rbacv1.GroupKind, Name: "team"},
			{Kind: rbacv1.ServiceAccountKind, Name: "bot"},
			{Kind: rbacv1.GroupKind, Name: "other", APIGroup: "example.com"},
		},
	}
	SetDefaultsRoleBinding(rb)
	if got, want := errorStrings(ValidateRoleBinding(rb)), "subjects[3].apiGroup: Unsupported value"; got != want {
		t.Errorf("defaulted RoleBinding: %q, want %q (only the explicit wrong apiGroup left)", got, want)
	}
	if rb.Subjects[2].APIGroup != "" {
		t.Errorf("ServiceAccount subject apiGroup defaulted to %q, want empty", rb.Subjects[2].APIGroup)
	}
	crb := &rbacv1.ClusterRoleBinding{RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: ViewerRole}, Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: "alice"}}}
	SetDefaultsClusterRoleBinding(crb)
	if errs := ValidateClusterRoleBinding(crb); len(errs) > 0 {
		t.Errorf("defaulted ClusterRoleBinding: %v", errs)
	}
}
