package apiserver

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/apiserver/rbac"
	"skiff.dev/skiff/identity"
)

// These tests drive RBAC through a real server: personal keys, bound to
// roles by the admin, act with their own self-signed client certificates,
// and each answer is checked against what the role defines.

// rbacTestScheme knows every kind these tests read and write.
func rbacTestScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{skiffv1alpha1.AddToScheme, corev1.AddToScheme, rbacv1.AddToScheme, authorizationv1.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// startPresetServer is startTestServer with the trust preset set, and a
// client that knows the RBAC kinds.
func startPresetServer(t *testing.T, preset string) *testServer {
	t.Helper()
	ts := startTestServer(t, t.TempDir(), func(c *Config) { c.TrustPreset = preset })
	ts.scheme = rbacTestScheme(t)
	var err error
	if ts.client, err = client.New(ts.cfg, client.Options{Scheme: ts.scheme}); err != nil {
		t.Fatalf("client: %v", err)
	}
	return ts
}

// rbacAdmin is the server's admin (system:masters) with a client that
// knows the RBAC kinds.
func rbacAdmin(t *testing.T, ts *testServer) client.Client {
	t.Helper()
	c, err := client.New(ts.cfg, client.Options{Scheme: rbacTestScheme(t), Mapper: ts.client.RESTMapper()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// personalKey is a fresh personal key and clients that authenticate with
// its self-signed certificate, trusting the server's CA only.
type personalKey struct {
	id   *identity.Identity
	user string // identity.KeyUserName
	cfg  *rest.Config
	c    client.Client
	cs   kubernetes.Interface
}

func newPersonalKey(t *testing.T, ts *testServer) *personalKey {
	t.Helper()
	id, err := identity.New()
	if err != nil {
		t.Fatal(err)
	}
	return personalKeyFor(t, ts, id)
}

func personalKeyFor(t *testing.T, ts *testServer, id *identity.Identity) *personalKey {
	t.Helper()
	certPEM, err := id.ClientCertificate("tester", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := id.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	cfg := rest.AnonymousClientConfig(ts.cfg) // the CA, not the admin's certificate
	cfg.CertData, cfg.KeyData = certPEM, keyPEM
	return personalKeyWith(t, ts, id, cfg)
}

func personalKeyWith(t *testing.T, ts *testServer, id *identity.Identity, cfg *rest.Config) *personalKey {
	t.Helper()
	c, err := client.New(cfg, client.Options{Scheme: rbacTestScheme(t), Mapper: ts.client.RESTMapper()})
	if err != nil {
		t.Fatal(err)
	}
	return &personalKey{id: id, user: identity.KeyUserName(id.Public()), cfg: cfg, c: c, cs: kubernetes.NewForConfigOrDie(cfg)}
}

// listWorkloads is the request the trust tests probe with.
func (k *personalKey) listWorkloads() error {
	return k.c.List(context.Background(), &skiffv1alpha1.WorkloadList{}, client.InNamespace("default"))
}

// can asks the server, as k, whether k may do verb on the resource.
func (k *personalKey) can(t *testing.T, attrs authorizationv1.ResourceAttributes) bool {
	t.Helper()
	r, err := k.cs.AuthorizationV1().SelfSubjectAccessReviews().Create(context.Background(),
		&authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &attrs}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("SelfSubjectAccessReview %+v as %s: %v", attrs, k.user, err)
	}
	return r.Status.Allowed
}

// waitKnown waits until the server authenticates k (a binding naming it
// reached the server's mirrors); probe is a request k is allowed.
func (k *personalKey) waitKnown(t *testing.T, probe func() error) {
	t.Helper()
	var last error
	eventually(t, 10*time.Second, k.user+" authenticated", func() bool {
		last = probe()
		return last == nil
	})
}

func userSubjects(name string) []rbacv1.Subject {
	return []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}}
}

func clusterRoleRefTo(name string) rbacv1.RoleRef {
	return rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name}
}

func newUserClusterRoleBinding(name, role, user string) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name}, RoleRef: clusterRoleRefTo(role), Subjects: userSubjects(user)}
}

func newUserRoleBinding(namespace, name string, ref rbacv1.RoleRef, user string) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}, RoleRef: ref, Subjects: userSubjects(user)}
}

// bindClusterRole binds role to k cluster-wide, as the admin, and waits
// until k authenticates.
func bindClusterRole(t *testing.T, admin client.Client, k *personalKey, role string) *rbacv1.ClusterRoleBinding {
	t.Helper()
	b := newUserClusterRoleBinding("test:"+identity.ID(k.id.Public())[:12]+":"+strings.TrimPrefix(role, "skiff:"), role, k.user)
	if err := admin.Create(context.Background(), b); err != nil {
		t.Fatalf("bind %s to %s: %v", role, k.user, err)
	}
	k.waitKnown(t, func() error { _, err := k.cs.Discovery().ServerVersion(); return err })
	return b
}

// allowedOrForbidden is true for success and false for Forbidden; any other
// outcome fails t.
func allowedOrForbidden(t *testing.T, what string, err error) bool {
	t.Helper()
	switch {
	case err == nil:
		return true
	case apierrors.IsForbidden(err):
		return false
	}
	t.Fatalf("%s: %v, want success or Forbidden", what, err)
	return false
}

// rbacResource is a kind the role table exercises, with an object to
// write and a list to read.
type rbacResource struct {
	group, resource string
	namespaced      bool
	object          func(name string) client.Object
	list            func() client.ObjectList
}

func (r rbacResource) namespace() string {
	if r.namespaced {
		return "default"
	}
	return ""
}

var rbacResources = []rbacResource{
	{skiffv1alpha1.GroupName, "workloads", true,
		func(n string) client.Object { return newWorkload(n, 1) },
		func() client.ObjectList { return &skiffv1alpha1.WorkloadList{} }},
	{skiffv1alpha1.GroupName, "instances", true,
		func(n string) client.Object { return newInstance(n) },
		func() client.ObjectList { return &skiffv1alpha1.InstanceList{} }},
	{skiffv1alpha1.GroupName, "nodes", false,
		func(n string) client.Object { return &skiffv1alpha1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}} },
		func() client.ObjectList { return &skiffv1alpha1.NodeList{} }},
	{"", "secrets", true,
		func(n string) client.Object {
			return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: n, Namespace: "default"}, StringData: map[string]string{"password": "s3cret"}}
		},
		func() client.ObjectList { return &corev1.SecretList{} }},
	{"", "configmaps", true,
		func(n string) client.Object {
			return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: n, Namespace: "default"}, Data: map[string]string{"a": "b"}}
		},
		func() client.ObjectList { return &corev1.ConfigMapList{} }},
	{"", "namespaces", false,
		func(n string) client.Object { return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}} },
		func() client.ObjectList { return &corev1.NamespaceList{} }},
	{"", "events", true,
		func(n string) client.Object {
			return &corev1.Event{
				ObjectMeta:     metav1.ObjectMeta{Name: n, Namespace: "default"},
				InvolvedObject: corev1.ObjectReference{Kind: "Workload", Namespace: "default", Name: "web"},
				Reason:         "Tested", Message: "by the RBAC table", Type: corev1.EventTypeNormal,
			}
		},
		func() client.ObjectList { return &corev1.EventList{} }},
	{rbacv1.GroupName, "clusterrolebindings", false,
		func(n string) client.Object {
			return newUserClusterRoleBinding(n, rbac.ViewerRole, "skiff-test-nobody")
		},
		func() client.ObjectList { return &rbacv1.ClusterRoleBindingList{} }},
}

// roleAccess is what a role grants on a resource: the table's verbs get and
// list are reads, create and delete writes.
type roleAccess int

const (
	noAccess roleAccess = iota
	readOnly
	readWrite
)

func (a roleAccess) allows(verb string) bool {
	if verb == "get" || verb == "list" {
		return a >= readOnly
	}
	return a == readWrite
}

var tableVerbs = []string{"get", "list", "create", "delete"}

// do performs verb on res as c: get and delete on victim (which the admin
// made), list in the resource's namespace, create of a new object.
func (res rbacResource) do(ctx context.Context, c client.Client, verb, victim, created string) error {
	switch verb {
	case "get":
		return c.Get(ctx, client.ObjectKeyFromObject(res.object(victim)), res.object(""))
	case "list":
		return c.List(ctx, res.list(), client.InNamespace(res.namespace()))
	case "create":
		return c.Create(ctx, res.object(created))
	case "delete":
		return c.Delete(ctx, res.object(victim))
	}
	panic("unknown verb " + verb)
}

// TestBuiltinRolesAgainstServer binds each built-in role to a fresh key
// and checks, request by request, that the key may do exactly what the
// role defines, and that its SelfSubjectAccessReview agrees.
func TestBuiltinRolesAgainstServer(t *testing.T) {
	ts := startTestServer(t, t.TempDir())
	admin := rbacAdmin(t, ts)
	ctx := context.Background()
	rows := []struct {
		short, role string
		access      map[string]roleAccess // by resource; missing is noAccess
	}{
		{"admin", rbac.AdminRole, map[string]roleAccess{
			"workloads": readWrite, "instances": readWrite, "nodes": readWrite, "secrets": readWrite,
			"configmaps": readWrite, "namespaces": readWrite, "events": readWrite, "clusterrolebindings": readWrite,
		}},
		{"operator", rbac.OperatorRole, map[string]roleAccess{
			"workloads": readWrite, "instances": readWrite, "nodes": readOnly, "secrets": readWrite,
			"configmaps": readWrite, "namespaces": readOnly, "events": readWrite,
		}},
		{"viewer", rbac.ViewerRole, map[string]roleAccess{
			"workloads": readOnly, "instances": readOnly, "nodes": readOnly,
			"configmaps": readOnly, "namespaces": readOnly, "events": readOnly,
		}},
	}
	for _, row := range rows {
		t.Run(row.short, func(t *testing.T) {
			k := newPersonalKey(t, ts)
			bindClusterRole(t, admin, k, row.role)
			for _, res := range rbacResources {
				victim := "victim-" + row.short
				if err := admin.Create(ctx, res.object(victim)); err != nil {
					t.Fatalf("admin creates %s %s: %v", res.resource, victim, err)
				}
				for _, verb := range tableVerbs {
					what := fmt.Sprintf("%s %s as %s", verb, res.resource, row.role)
					got := allowedOrForbidden(t, what, res.do(ctx, k.c, verb, victim, "by-"+row.short))
					if want := row.access[res.resource].allows(verb); got != want {
						t.Errorf("%s: allowed %v, want %v", what, got, want)
					}
					attrs := authorizationv1.ResourceAttributes{Verb: verb, Group: res.group, Resource: res.resource, Namespace: res.namespace()}
					if verb == "get" || verb == "delete" {
						attrs.Name = victim
					}
					if said := k.can(t, attrs); said != got {
						t.Errorf("%s: SelfSubjectAccessReview says %v, the request was allowed %v", what, said, got)
					}
				}
			}
		})
	}
}

// TestMCPRoleKey: a key bound to skiff:mcp reads nothing itself, may
// impersonate key users, and then acts with their rights.
func TestMCPRoleKey(t *testing.T) {
	ts := startTestServer(t, t.TempDir())
	admin := rbacAdmin(t, ts)
	ctx := context.Background()
	bridge := newPersonalKey(t, ts)
	bindClusterRole(t, admin, bridge, rbac.MCPRole)
	viewer := newPersonalKey(t, ts)
	bindClusterRole(t, admin, viewer, rbac.ViewerRole)

	for _, res := range rbacResources {
		if err := res.do(ctx, bridge.c, "list", "", ""); !apierrors.IsForbidden(err) {
			t.Errorf("list %s as %s: %v, want Forbidden", res.resource, rbac.MCPRole, err)
		}
	}
	if !bridge.can(t, authorizationv1.ResourceAttributes{Verb: "impersonate", Resource: "users", Name: viewer.user}) {
		t.Errorf("SelfSubjectAccessReview: %s may not impersonate the key user %s", rbac.MCPRole, viewer.user)
	}
	cfg := rest.CopyConfig(bridge.cfg)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: viewer.user}
	asViewer := personalKeyWith(t, ts, bridge.id, cfg)
	if err := asViewer.listWorkloads(); err != nil {
		t.Errorf("list workloads impersonating a viewer: %v", err)
	}
	if err := asViewer.c.Create(ctx, newWorkload("by-bridge", 1)); !apierrors.IsForbidden(err) {
		t.Errorf("create a workload impersonating a viewer: %v, want Forbidden", err)
	}
}

// TestMCPRoleImpersonatesKeyUsersOnly: skiff:mcp's description says the
// API server holds its impersonation to key users; a person's key bound
// to it must not act as a user known by name.
func TestMCPRoleImpersonatesKeyUsersOnly(t *testing.T) {
	ts := startTestServer(t, t.TempDir())
	admin := rbacAdmin(t, ts)
	ctx := context.Background()
	bridge := newPersonalKey(t, ts)
	bindClusterRole(t, admin, bridge, rbac.MCPRole)

	if err := admin.Create(ctx, newUserClusterRoleBinding("named-views", rbac.ViewerRole, "skiff-test-named")); err != nil {
		t.Fatal(err)
	}
	adminCS := kubernetes.NewForConfigOrDie(ts.cfg)
	eventually(t, 10*time.Second, "skiff-test-named may list workloads", func() bool {
		sar, err := adminCS.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: "skiff-test-named", ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "list", Group: skiffv1alpha1.GroupName, Resource: "workloads", Namespace: "default"},
		}}, metav1.CreateOptions{})
		return err == nil && sar.Status.Allowed
	})
	cfg := rest.CopyConfig(bridge.cfg)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "skiff-test-named"}
	asNamed := personalKeyWith(t, ts, bridge.id, cfg)
	if err := asNamed.listWorkloads(); !apierrors.IsForbidden(err) {
		t.Errorf("list workloads impersonating a user known by name: %v, want Forbidden", err)
	}
}

// TestKeyTrustFollowsBindings: under the restrictive preset a key is
// unknown (401) until a binding names it, and again once it is deleted.
func TestKeyTrustFollowsBindings(t *testing.T) {
	ts := startTestServer(t, t.TempDir())
	admin := rbacAdmin(t, ts)
	ctx := context.Background()
	k := newPersonalKey(t, ts)
	unauthorized := func() bool { return apierrors.IsUnauthorized(k.listWorkloads()) }

	if err := k.listWorkloads(); !apierrors.IsUnauthorized(err) {
		t.Fatalf("list workloads with an unbound key: %v, want 401 Unauthorized", err)
	}
	if _, err := k.cs.Discovery().ServerVersion(); !apierrors.IsUnauthorized(err) {
		t.Fatalf("version with an unbound key: %v, want 401 Unauthorized", err)
	}
	b := newUserClusterRoleBinding("alice-views", rbac.ViewerRole, k.user)
	if err := admin.Create(ctx, b); err != nil {
		t.Fatal(err)
	}
	k.waitKnown(t, k.listWorkloads)
	if err := admin.Delete(ctx, b); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "401 after the binding is deleted", unauthorized)
}

// TestPermissivePreset: any valid key reads as a viewer, and no more.
func TestPermissivePreset(t *testing.T) {
	ts := startPresetServer(t, rbac.PresetPermissive)
	ctx := context.Background()
	k := newPersonalKey(t, ts)
	if err := k.listWorkloads(); err != nil {
		t.Fatalf("an unknown key lists workloads: %v", err)
	}
	if err := k.c.Create(ctx, newWorkload("web", 1)); !apierrors.IsForbidden(err) {
		t.Errorf("an unknown key creates a workload: %v, want Forbidden", err)
	}
	if err := k.c.List(ctx, &corev1.SecretList{}, client.InNamespace("default")); !apierrors.IsForbidden(err) {
		t.Errorf("an unknown key lists secrets: %v, want Forbidden", err)
	}
	if err := ts.client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "default"}, StringData: map[string]string{"password": "s3cret"}}); err != nil {
		t.Fatal(err)
	}
	if err := k.c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "db"}, &corev1.Secret{}); !apierrors.IsForbidden(err) {
		t.Errorf("an unknown key reads a secret: %v, want Forbidden", err)
	}
}

// TestRoleBindingConfinesToNamespace: a role bound in a namespace grants
// nothing outside it.
func TestRoleBindingConfinesToNamespace(t *testing.T) {
	ts := startTestServer(t, t.TempDir())
	admin := rbacAdmin(t, ts)
	ctx := context.Background()
	if err := admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}); err != nil {
		t.Fatal(err)
	}
	k := newPersonalKey(t, ts)
	if err := admin.Create(ctx, newUserRoleBinding("team-a", "ops", clusterRoleRefTo(rbac.OperatorRole), k.user)); err != nil {
		t.Fatal(err)
	}
	secret := func(ns string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns}, StringData: map[string]string{"password": "s3cret"}}
	}
	k.waitKnown(t, func() error { return k.c.List(ctx, &corev1.SecretList{}, client.InNamespace("team-a")) })
	if err := k.c.Create(ctx, secret("team-a")); err != nil {
		t.Errorf("create a secret in team-a: %v", err)
	}
	if err := k.c.Create(ctx, secret("default")); !apierrors.IsForbidden(err) {
		t.Errorf("create a secret in default: %v, want Forbidden", err)
	}
	if err := k.listWorkloads(); !apierrors.IsForbidden(err) {
		t.Errorf("list workloads in default: %v, want Forbidden", err)
	}
	if err := k.c.List(ctx, &corev1.SecretList{}); !apierrors.IsForbidden(err) {
		t.Errorf("list secrets in every namespace: %v, want Forbidden", err)
	}
}

const escalationMessage = "attempting to grant RBAC permissions not currently held"

// isEscalation reports whether err is the admission's refusal to grant
// what the writer does not hold.
func isEscalation(err error) bool {
	return apierrors.IsForbidden(err) && strings.Contains(err.Error(), escalationMessage)
}

// TestRBACEscalationRefused: nobody grants, through a role or a binding,
// more than they hold.
func TestRBACEscalationRefused(t *testing.T) {
	ts := startTestServer(t, t.TempDir())
	admin := rbacAdmin(t, ts)
	ctx := context.Background()
	operator := newPersonalKey(t, ts)
	bindClusterRole(t, admin, operator, rbac.OperatorRole)
	readWorkloads := []rbacv1.PolicyRule{{APIGroups: []string{skiffv1alpha1.GroupName}, Resources: []string{"workloads"}, Verbs: []string{"get", "list"}}}

	t.Run("an operator writes no RBAC", func(t *testing.T) {
		err := operator.c.Create(ctx, newUserClusterRoleBinding("self-admin", rbac.AdminRole, operator.user))
		if !apierrors.IsForbidden(err) {
			t.Fatalf("operator binds skiff:admin to itself: %v, want Forbidden", err)
		}
		role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "reader", Namespace: "default"}, Rules: readWorkloads}
		if err := operator.c.Create(ctx, role); !apierrors.IsForbidden(err) || isEscalation(err) {
			t.Fatalf("operator creates a Role of rules it holds: %v, want Forbidden by RBAC (it may not write roles at all)", err)
		}
	})

	t.Run("a binding writer grants only what it holds", func(t *testing.T) {
		writer := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "test:rbac-writer"}, Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{rbacv1.GroupName}, Resources: []string{"roles", "rolebindings", "clusterrolebindings"}, Verbs: []string{"create"},
		}}}
		if err := admin.Create(ctx, writer); err != nil {
			t.Fatal(err)
		}
		if err := admin.Create(ctx, newUserClusterRoleBinding("test:operator-writes-rbac", writer.Name, operator.user)); err != nil {
			t.Fatal(err)
		}
		// The mirrors see the new binding within milliseconds; wait for them.
		eventually(t, 10*time.Second, "the operator may create clusterrolebindings", func() bool {
			return operator.can(t, authorizationv1.ResourceAttributes{Verb: "create", Group: rbacv1.GroupName, Resource: "clusterrolebindings"})
		})
		err := operator.c.Create(ctx, newUserClusterRoleBinding("self-admin", rbac.AdminRole, operator.user))
		if !isEscalation(err) {
			t.Fatalf("bind skiff:admin to itself: %v, want Forbidden: %s", err, escalationMessage)
		}
		if err := admin.Get(ctx, client.ObjectKey{Name: "self-admin"}, &rbacv1.ClusterRoleBinding{}); !apierrors.IsNotFound(err) {
			t.Fatalf("the refused binding: %v, want NotFound", err)
		}
		other := newPersonalKey(t, ts)
		if err := operator.c.Create(ctx, newUserClusterRoleBinding("other-views", rbac.ViewerRole, other.user)); err != nil {
			t.Fatalf("operator binds skiff:viewer, whose rules it holds: %v", err)
		}
		other.waitKnown(t, other.listWorkloads)
		role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "reader", Namespace: "default"}, Rules: readWorkloads}
		if err := operator.c.Create(ctx, role); err != nil {
			t.Fatalf("create a Role of rules it holds: %v", err)
		}
		deleter := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "node-deleter", Namespace: "default"}, Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{skiffv1alpha1.GroupName}, Resources: []string{"nodes"}, Verbs: []string{"delete"},
		}}}
		if err := operator.c.Create(ctx, deleter); !isEscalation(err) {
			t.Fatalf("create a Role that deletes nodes: %v, want Forbidden: %s", err, escalationMessage)
		}
	})

	t.Run("an admin by binding grants a role", func(t *testing.T) {
		boss := newPersonalKey(t, ts)
		bindClusterRole(t, admin, boss, rbac.AdminRole)
		other := newPersonalKey(t, ts)
		if err := boss.c.Create(ctx, newUserClusterRoleBinding("granted-by-boss", rbac.ViewerRole, other.user)); err != nil {
			t.Fatalf("skiff:admin (by binding) grants skiff:viewer: %v", err)
		}
		other.waitKnown(t, other.listWorkloads)
	})

	t.Run("a namespace binder binds only roles it holds", func(t *testing.T) {
		if err := admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-b"}}); err != nil {
			t.Fatal(err)
		}
		readConfigMaps := rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list"}}
		binder := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "binder", Namespace: "team-b"}, Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"rolebindings"}, Verbs: []string{"create"}},
			readConfigMaps,
		}}
		reader := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "cm-reader", Namespace: "team-b"}, Rules: []rbacv1.PolicyRule{readConfigMaps}}
		k := newPersonalKey(t, ts)
		for _, obj := range []client.Object{binder, reader, newUserRoleBinding("team-b", "binder", rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "binder"}, k.user)} {
			if err := admin.Create(ctx, obj); err != nil {
				t.Fatal(err)
			}
		}
		k.waitKnown(t, func() error { return k.c.List(ctx, &corev1.ConfigMapList{}, client.InNamespace("team-b")) })
		err := k.c.Create(ctx, newUserRoleBinding("team-b", "self-admin", clusterRoleRefTo(rbac.AdminRole), k.user))
		if !isEscalation(err) {
			t.Fatalf("bind skiff:admin in team-b: %v, want Forbidden: %s", err, escalationMessage)
		}
		other := newPersonalKey(t, ts)
		if err := k.c.Create(ctx, newUserRoleBinding("team-b", "reads", rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "cm-reader"}, other.user)); err != nil {
			t.Fatalf("bind cm-reader, whose rules it holds: %v", err)
		}
		other.waitKnown(t, func() error { return other.c.List(ctx, &corev1.ConfigMapList{}, client.InNamespace("team-b")) })
		if err := other.c.List(ctx, &corev1.ConfigMapList{}, client.InNamespace("default")); !apierrors.IsForbidden(err) {
			t.Fatalf("the bound key lists configmaps in default: %v, want Forbidden", err)
		}
	})
}

// TestJoinTokenRecordsNeedNodeCreate: a user who may write Secrets but
// not create Nodes cannot mint a join token by writing its record.
func TestJoinTokenRecordsNeedNodeCreate(t *testing.T) {
	ts := startTestServer(t, t.TempDir())
	admin := rbacAdmin(t, ts)
	ctx := context.Background()
	operator := newPersonalKey(t, ts)
	bindClusterRole(t, admin, operator, rbac.OperatorRole)
	boss := newPersonalKey(t, ts)
	bindClusterRole(t, admin, boss, rbac.AdminRole)
	record := func(id string) *corev1.Secret {
		return JoinTokenRecord(identity.JoinToken{CAHash: make([]byte, 32), ID: id, Secret: []byte("0123456789abcdef0123")}, time.Now().Add(time.Hour), "test")
	}

	plain := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "plain", Namespace: SystemNamespace}, StringData: map[string]string{"a": "b"}}
	if err := operator.c.Create(ctx, plain); err != nil {
		t.Fatalf("operator creates a plain secret in %s: %v", SystemNamespace, err)
	}
	err := operator.c.Create(ctx, record("opr000"))
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "join token") {
		t.Fatalf("operator writes a join token record: %v, want Forbidden naming join tokens", err)
	}
	if err := boss.c.Create(ctx, record("adm000")); err != nil {
		t.Fatalf("skiff:admin (by binding) writes a join token record: %v", err)
	}

	// A server token hands out the cluster's keys: creating nodes is not
	// enough to mint one, nor to make a node token one.
	nodeMaker := newPersonalKey(t, ts)
	if err := admin.Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "node-maker"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{skiffv1alpha1.GroupName}, Resources: []string{"nodes"}, Verbs: []string{"create"}},
			{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"create", "update", "get"}},
		},
	}); err != nil {
		t.Fatal(err)
	}
	bindClusterRole(t, admin, nodeMaker, "node-maker")
	node := record("nod000")
	if err := nodeMaker.c.Create(ctx, node); err != nil {
		t.Fatalf("a user who may create nodes writes a node token record: %v", err)
	}
	server := record("srv000")
	server.Data[JoinTokenRoleKey] = []byte(TokenRoleServer)
	if err := nodeMaker.c.Create(ctx, server); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "server tokens") {
		t.Fatalf("a user who may create nodes writes a server token record: %v, want Forbidden naming server tokens", err)
	}
	node.Data[JoinTokenRoleKey] = []byte(TokenRoleServer)
	if err := nodeMaker.c.Update(ctx, node); !apierrors.IsForbidden(err) {
		t.Fatalf("a user who may create nodes makes a node token a server token: %v, want Forbidden", err)
	}
	if err := boss.c.Create(ctx, server); err != nil {
		t.Fatalf("skiff:admin writes a server token record: %v", err)
	}
}

// TestAccessReviewsAgree: the admin's SubjectAccessReview for a key user
// answers as that user's own SelfSubjectAccessReview, and the viewer's
// SelfSubjectRulesReview (kubectl auth can-i --list) lists what it reads.
func TestAccessReviewsAgree(t *testing.T) {
	ts := startTestServer(t, t.TempDir())
	admin := rbacAdmin(t, ts)
	adminCS := kubernetes.NewForConfigOrDie(ts.cfg)
	ctx := context.Background()
	viewer := newPersonalKey(t, ts)
	bindClusterRole(t, admin, viewer, rbac.ViewerRole)
	operator := newPersonalKey(t, ts)
	bindClusterRole(t, admin, operator, rbac.OperatorRole)

	for _, k := range []*personalKey{viewer, operator} {
		for _, res := range rbacResources {
			for _, verb := range tableVerbs {
				attrs := authorizationv1.ResourceAttributes{Verb: verb, Group: res.group, Resource: res.resource, Namespace: res.namespace()}
				sar, err := adminCS.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
					Spec: authorizationv1.SubjectAccessReviewSpec{User: k.user, ResourceAttributes: &attrs},
				}, metav1.CreateOptions{})
				if err != nil {
					t.Fatalf("SubjectAccessReview: %v", err)
				}
				if self := k.can(t, attrs); sar.Status.Allowed != self {
					t.Errorf("%s %s for %s: SubjectAccessReview %v (%s), SelfSubjectAccessReview %v", verb, res.resource, k.user, sar.Status.Allowed, sar.Status.Reason, self)
				}
			}
		}
	}

	review, err := viewer.cs.AuthorizationV1().SelfSubjectRulesReviews().Create(ctx, &authorizationv1.SelfSubjectRulesReview{
		Spec: authorizationv1.SelfSubjectRulesReviewSpec{Namespace: "default"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("SelfSubjectRulesReview: %v", err)
	}
	var readsWorkloads bool
	for _, r := range review.Status.ResourceRules {
		if slices.Contains(r.Resources, "secrets") || slices.Contains(r.Resources, "*") {
			t.Errorf("the viewer's rules include secrets: %+v", r)
		}
		if slices.Contains(r.APIGroups, skiffv1alpha1.GroupName) && slices.Contains(r.Resources, "workloads") {
			readsWorkloads = slices.Equal(r.Verbs, []string{"get", "list", "watch"})
		}
	}
	if !readsWorkloads {
		t.Errorf("the viewer's rules do not list workloads get, list, watch: %+v", review.Status.ResourceRules)
	}
}
