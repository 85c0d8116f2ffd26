package rbac

import (
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apiserver/pkg/authentication/user"
)

func TestBuiltinRolesAreLabelledDescribedAndValid(t *testing.T) {
	names := map[string]bool{}
	for _, r := range Builtin() {
		names[r.Name] = true
		if r.Labels[BuiltinLabel] != "true" {
			t.Errorf("%s: label %s=%q, want true", r.Name, BuiltinLabel, r.Labels[BuiltinLabel])
		}
		if r.Annotations[DescriptionAnnotation] == "" {
			t.Errorf("%s: no %s annotation", r.Name, DescriptionAnnotation)
		}
		if errs := ValidateClusterRole(r); len(errs) > 0 {
			t.Errorf("%s: %v", r.Name, errs)
		}
	}
	for _, want := range []string{AdminRole, OperatorRole, ViewerRole, MCPRole, DiscoveryRole} {
		if !names[want] {
			t.Errorf("Builtin has no %s", want)
		}
	}
}

func TestBuiltinReturnsNewObjects(t *testing.T) {
	first := Builtin()
	first[1].Rules[0].Verbs[0] = "changed"
	first[1].Labels["x"] = "y"
	for _, r := range Builtin() {
		for _, rule := range r.Rules {
			if rule.Verbs[0] == "changed" {
				t.Fatalf("%s: a change to an earlier result shows", r.Name)
			}
		}
		if _, ok := r.Labels["x"]; ok {
			t.Fatalf("%s: a label added to an earlier result shows", r.Name)
		}
	}
}

func TestBuiltinBindingsGiveAuthenticatedUsersDiscovery(t *testing.T) {
	bindings := BuiltinBindings()
	for _, b := range bindings {
		if errs := ValidateClusterRoleBinding(b); len(errs) > 0 {
			t.Errorf("%s: %v", b.Name, errs)
		}
		if b.Labels[BuiltinLabel] != "true" {
			t.Errorf("%s: not labelled %s", b.Name, BuiltinLabel)
		}
	}
	a := New(newSource(Builtin(), bindings))
	authenticated := &user.DefaultInfo{Name: "someone", Groups: []string{user.AllAuthenticated}}
	anonymous := &user.DefaultInfo{Name: user.Anonymous, Groups: []string{user.AllUnauthenticated}}
	assertDecision(t, a, urlRequest(authenticated, "get", "/apis"), true)
	assertDecision(t, a, resourceRequest(authenticated, "create", authz, "selfsubjectrulesreviews", "", "", ""), true)
	assertDecision(t, a, resourceRequest(authenticated, "list", skiff, "workloads", "", "default", ""), false)
	assertDecision(t, a, urlRequest(anonymous, "get", "/apis"), false)
}

func TestPresetBindings(t *testing.T) {
	key := keyUser("skiff:key:abc")
	tests := []struct {
		preset       string
		keyUserLists bool // may a key user list workloads
	}{
		{PresetRestrictive, false},
		{PresetPermissive, true},
	}
	for _, tt := range tests {
		t.Run(tt.preset, func(t *testing.T) {
			bindings, err := PresetBindings(tt.preset)
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range bindings {
				if errs := ValidateClusterRoleBinding(b); len(errs) > 0 {
					t.Errorf("%s: %v", b.Name, errs)
				}
			}
			a := New(newSource(Builtin(), BuiltinBindings(), bindings))
			assertDecision(t, a, resourceRequest(key, "list", skiff, "workloads", "", "default", ""), tt.keyUserLists)
			assertDecision(t, a, resourceRequest(key, "get", "", "secrets", "", "default", "db"), false)
			assertDecision(t, a, resourceRequest(key, "create", skiff, "workloads", "", "default", ""), false)
		})
	}
}

func TestPresetPermissiveBindsViewerToKeys(t *testing.T) {
	bindings, _ := PresetBindings(PresetPermissive)
	if len(bindings) != 1 {
		t.Fatalf("%d bindings, want 1", len(bindings))
	}
	b := bindings[0]
	want := rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: KeysGroup}
	if b.Name != PermissiveBinding || b.RoleRef.Name != ViewerRole || len(b.Subjects) != 1 || b.Subjects[0] != want {
		t.Errorf("binding %s of %s to %v, want %s of %s to group %s", b.Name, b.RoleRef.Name, b.Subjects, PermissiveBinding, ViewerRole, KeysGroup)
	}
}

func TestPresetBindingsRefusesUnknownPreset(t *testing.T) {
	_, err := PresetBindings("open")
	if err == nil {
		t.Fatal("no error for preset open")
	}
	for _, want := range []string{`"open"`, `"restrictive"`, `"permissive"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}
