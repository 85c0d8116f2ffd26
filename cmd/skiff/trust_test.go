package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"skiff.dev/skiff/apiserver/rbac"
	"skiff.dev/skiff/identity"
)

func newKey(t *testing.T) ed25519.PublicKey {
	t.Helper()
	id, err := identity.New()
	if err != nil {
		t.Fatal(err)
	}
	return id.Public()
}

func TestClusterRoleFor(t *testing.T) {
	cases := []struct{ role, clusterRole, short string }{
		{"admin", rbac.AdminRole, "admin"},
		{"operator", rbac.OperatorRole, "operator"},
		{"viewer", rbac.ViewerRole, "viewer"},
		{"mcp", rbac.MCPRole, "mcp"},
		{rbac.ViewerRole, rbac.ViewerRole, "viewer"},
		{"shop-editor", "shop-editor", "shop-editor"},
	}
	for _, c := range cases {
		if cr, short := clusterRoleFor(c.role); cr != c.clusterRole || short != c.short {
			t.Errorf("clusterRoleFor(%q) = %q, %q; want %q, %q", c.role, cr, short, c.clusterRole, c.short)
		}
	}
}

func TestParseTrustee(t *testing.T) {
	dir := t.TempDir()
	p, err := identity.NewPersonal("Ada Lovelace", "ada@example.org", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "ada")
	if err := identity.SavePersonal(file, p, false); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, arg string
		want      trustee
		err       string
	}{
		{name: "public key", arg: p.PublicKeyString(), want: trustee{pub: p.Public()}},
		{name: "key user name", arg: p.UserName(), want: trustee{pub: p.Public()}},
		{name: "identity file", arg: file, want: trustee{pub: p.Public(), name: "Ada Lovelace"}},
		{name: "user name of no key", arg: identity.KeyUserPrefix + "abc", err: "not a key user name"},
		{name: "neither key nor file", arg: filepath.Join(dir, "missing"), err: "neither a public key"},
		{name: "file that is no identity", arg: garbage, err: garbage},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseTrustee(c.arg)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("parseTrustee(%q) = %v, %v; want an error with %q", c.arg, got, err, c.err)
				}
				return
			}
			if err != nil || !got.pub.Equal(c.want.pub) || got.name != c.want.name {
				t.Fatalf("parseTrustee(%q) = %v, %v; want %v", c.arg, got, err, c.want)
			}
		})
	}
}

func TestSelectTrust(t *testing.T) {
	a, b := newKey(t), newKey(t)
	entries := []trustEntry{
		{binding: "a-admin", role: rbac.AdminRole, pub: a},
		{binding: "a-viewer-shop", namespace: "shop", role: rbac.ViewerRole, pub: a},
		{binding: "a-viewer-lab", namespace: "lab", role: rbac.ViewerRole, pub: a},
		{binding: "b-viewer", role: rbac.ViewerRole, pub: b},
	}
	cases := []struct {
		name, role, namespace string
		pub                   ed25519.PublicKey
		want                  []string
	}{
		{name: "every binding of the key", pub: a, want: []string{"a-admin", "a-viewer-shop", "a-viewer-lab"}},
		{name: "one role", pub: a, role: rbac.ViewerRole, want: []string{"a-viewer-shop", "a-viewer-lab"}},
		{name: "one namespace", pub: a, namespace: "lab", want: []string{"a-viewer-lab"}},
		{name: "role and namespace", pub: a, role: rbac.AdminRole, namespace: "lab"},
		{name: "another key", pub: b, want: []string{"b-viewer"}},
		{name: "an unknown key", pub: newKey(t)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			for _, e := range selectTrust(entries, c.pub, c.role, c.namespace) {
				got = append(got, e.binding)
			}
			if strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Errorf("selectTrust = %v; want %v", got, c.want)
			}
		})
	}
}

// TestTrustCommands: trust add binds a key, given any of its three forms,
// cluster-wide or in a namespace, and says when it is bound already; trust
// list shows the bindings; trust remove deletes them, narrowed by --role
// and --namespace, and names a key it finds nothing of. A key trusted to
// write bindings may grant a role it holds but not one it does not: the
// server's refusal is printed as it is.
func TestTrustCommands(t *testing.T) {
	srv, kubeconfig := startServer(t)
	ctx := context.Background()
	cs := kubernetes.NewForConfigOrDie(srv.Admin)
	dir := t.TempDir()
	ada, err := identity.NewPersonal("Ada Lovelace", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	adaFile := filepath.Join(dir, "ada")
	if err := identity.SavePersonal(adaFile, ada, false); err != nil {
		t.Fatal(err)
	}
	bob := newKey(t)
	bobKey := identity.EncodePublicKey(bob)
	trust := func(kubeconfig string, args ...string) (string, error) {
		stdout, _, err := runSkiff(t, "", append([]string{"trust", "--kubeconfig", kubeconfig}, args...)...)
		return stdout, err
	}

	adds := []struct {
		args []string
		want string
	}{
		{[]string{"add", adaFile, "--role", "viewer"}, "trusted Ada Lovelace (" + ada.UserName() + ") as skiff:viewer cluster-wide"},
		{[]string{"add", bobKey, "--role", "operator", "--namespace", "default"}, "trusted " + identity.KeyUserName(bob) + " as skiff:operator in namespace default"},
		{[]string{"add", identity.KeyUserName(bob), "--role", "skiff:operator", "-n", "default"}, "already trusted as skiff:operator in namespace default"},
		{[]string{"add", bobKey, "--role", "viewer"}, "as skiff:viewer cluster-wide"},
		{[]string{"add", ada.PublicKeyString(), "--role", "viewer"}, "already trusted"},
	}
	for _, a := range adds {
		if out, err := trust(kubeconfig, a.args...); err != nil || !strings.Contains(out, a.want) {
			t.Fatalf("trust %v: %q, %v; want %q", a.args, out, err, a.want)
		}
	}
	crb, err := cs.RbacV1().ClusterRoleBindings().Get(ctx, "skiff:trust:viewer:"+ada.ID(), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantSubject := rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: ada.UserName()}
	if crb.Labels[trustLabel] != "true" || crb.Annotations[publicKeyAnnotation] != ada.PublicKeyString() || crb.Annotations[displayNameAnnotation] != "Ada Lovelace" ||
		crb.RoleRef != (rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: rbac.ViewerRole}) || len(crb.Subjects) != 1 || crb.Subjects[0] != wantSubject {
		t.Errorf("binding %s: labels %v annotations %v roleRef %v subjects %v", crb.Name, crb.Labels, crb.Annotations, crb.RoleRef, crb.Subjects)
	}
	if _, err := cs.RbacV1().RoleBindings("default").Get(ctx, "skiff:trust:operator:"+identity.ID(bob), metav1.GetOptions{}); err != nil {
		t.Errorf("bob's RoleBinding: %v", err)
	}

	// A ClusterRole that does not exist is bound (it may be made later),
	// with a warning (it may be misspelt); the built-in ones exist.
	for role, warn := range map[string]bool{"no-such-role": true, "viewer": false} {
		_, stderr, err := runSkiff(t, "", "trust", "add", bobKey, "--role", role, "--kubeconfig", kubeconfig)
		if err != nil || strings.Contains(stderr, "WARNING") != warn {
			t.Errorf("trust add --role %s: %v, stderr %q; want a warning: %v", role, err, stderr, warn)
		}
	}
	if out, err := trust(kubeconfig, "remove", bobKey, "--role", "no-such-role"); err != nil || !strings.Contains(out, "as no-such-role cluster-wide") {
		t.Errorf("trust remove --role no-such-role: %q, %v", out, err)
	}

	list := func() []map[string]string {
		t.Helper()
		out, err := trust(kubeconfig, "list")
		if err != nil {
			t.Fatalf("trust list: %v", err)
		}
		return tableRows(t, out)
	}
	rows := list()
	wantRows := []map[string]string{
		{"ID": ada.ID(), "NAME": "Ada Lovelace", "ROLE": rbac.ViewerRole, "NAMESPACE": "*"},
		{"ID": identity.ID(bob), "NAME": "", "ROLE": rbac.OperatorRole, "NAMESPACE": "default"},
		{"ID": identity.ID(bob), "NAME": "", "ROLE": rbac.ViewerRole, "NAMESPACE": "*"},
	}
	if len(rows) != len(wantRows) {
		t.Fatalf("trust list: %v; want %v", rows, wantRows)
	}
	for _, want := range wantRows {
		found := false
		for _, r := range rows {
			found = found || (equalRow(r, want) && r["AGE"] != "")
		}
		if !found {
			t.Errorf("trust list %v has no row %v", rows, want)
		}
	}

	removes := []struct {
		args    []string
		want    string
		wantErr error
	}{
		{args: []string{"remove", bobKey, "--role", "admin"}, wantErr: errNotTrusted},
		{args: []string{"remove", bobKey, "--namespace", "default"}, want: "removed the trust of " + identity.KeyUserName(bob) + " as skiff:operator in namespace default"},
		{args: []string{"remove", bobKey, "--namespace", "default"}, wantErr: errNotTrusted},
		{args: []string{"remove", adaFile}, want: "as skiff:viewer cluster-wide"},
		{args: []string{"remove", identity.KeyUserName(bob)}, want: "as skiff:viewer cluster-wide"},
		{args: []string{"remove", adaFile}, wantErr: errNotTrusted},
	}
	for _, r := range removes {
		out, err := trust(kubeconfig, r.args...)
		if r.wantErr != nil {
			if !errors.Is(err, r.wantErr) || !strings.Contains(err.Error(), "skiff:key:") {
				t.Errorf("trust %v: %v; want %v naming the key", r.args, err, r.wantErr)
			}
			continue
		}
		if err != nil || !strings.Contains(out, r.want) {
			t.Errorf("trust %v: %q, %v; want %q", r.args, out, err, r.want)
		}
	}
	if rows := list(); len(rows) != 0 {
		t.Errorf("trust list after removing all: %v", rows)
	}

	t.Run("no escalation", func(t *testing.T) {
		testTrustEscalation(t, srv.URL, srv.Admin.CAData, kubeconfig, cs)
	})
}

// testTrustEscalation trusts a key with a role that may write bindings,
// then has it grant that role (allowed) and skiff:admin (refused).
func testTrustEscalation(t *testing.T, server string, caPEM []byte, adminKubeconfig string, cs kubernetes.Interface) {
	ctx := context.Background()
	binder := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "test:binder"},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{rbacv1.GroupName},
			Resources: []string{"clusterrolebindings", "rolebindings"},
			Verbs:     []string{"get", "list", "create", "delete"},
		}},
	}
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, binder, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	carol, err := identity.NewPersonal("Carol", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := runSkiff(t, "", "trust", "add", carol.PublicKeyString(), "--role", binder.Name, "--kubeconfig", adminKubeconfig); err != nil {
		t.Fatalf("trust carol as %s: %v", binder.Name, err)
	}
	data, err := personalKubeconfig(carol, server, caPEM, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	carolKubeconfig := filepath.Join(t.TempDir(), "carol.kubeconfig")
	if err := os.WriteFile(carolKubeconfig, data, 0o600); err != nil {
		t.Fatal(err)
	}
	// The server may take a moment to learn the binding that lets carol in.
	dave := newKey(t)
	daveKey := identity.EncodePublicKey(dave)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, _, err := runSkiff(t, "", "trust", "add", daveKey, "--role", binder.Name, "--kubeconfig", carolKubeconfig)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("carol granting the role she holds: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, _, err = runSkiff(t, "", "trust", "add", daveKey, "--role", "admin", "--kubeconfig", carolKubeconfig)
	var status *apierrors.StatusError
	if !errors.As(err, &status) || !apierrors.IsForbidden(err) {
		t.Fatalf("carol granting skiff:admin: %v; want the server's Forbidden as it is", err)
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Get(ctx, "skiff:trust:admin:"+identity.ID(dave), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the refused binding: %v; want none", err)
	}
}

// TestTrustSeesEveryBinding: a binding made with kubectl, naming a key and
// someone else, is listed, and removing the key takes it out of the
// binding and leaves the other subject bound.
func TestTrustSeesEveryBinding(t *testing.T) {
	srv, kubeconfig := startServer(t)
	ctx := context.Background()
	cs := kubernetes.NewForConfigOrDie(srv.Admin)
	key := newKey(t)
	b := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "made-by-hand"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: rbac.ViewerRole},
		Subjects: []rbacv1.Subject{
			{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: identity.KeyUserName(key)},
			{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "someone"},
		},
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, b, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	out, _, err := runSkiff(t, "", "trust", "--kubeconfig", kubeconfig, "list")
	if err != nil || !strings.Contains(out, identity.ID(key)) {
		t.Fatalf("trust list: %v\n%s\nwant the hand-made binding's key", err, out)
	}
	if _, _, err := runSkiff(t, "", "trust", "--kubeconfig", kubeconfig, "remove", identity.EncodePublicKey(key)); err != nil {
		t.Fatalf("trust remove: %v", err)
	}
	got, err := cs.RbacV1().ClusterRoleBindings().Get(ctx, "made-by-hand", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the shared binding is gone: %v", err)
	}
	if len(got.Subjects) != 1 || got.Subjects[0].Name != "someone" {
		t.Errorf("subjects after remove: %+v; want only someone", got.Subjects)
	}
}
