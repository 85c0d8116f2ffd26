package apiserver

import (
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/identity"
)

func TestAuthorizeImpersonation(t *testing.T) {
	bridge := &user.DefaultInfo{Name: MCPUser, Groups: []string{MCPGroup, user.AllAuthenticated}}
	node := &user.DefaultInfo{Name: "skiff:node:n1", Groups: []string{"skiff:nodes", user.AllAuthenticated}}
	id, _ := identity.New()
	keyUser := identity.KeyUserName(id.Public())
	other, _ := identity.New()
	admin, _ := identity.New()
	static := func(pub ed25519.PublicKey) bool { return pub.Equal(admin.Public()) }
	person := &user.DefaultInfo{Name: identity.KeyUserName(other.Public()), Groups: []string{"skiff:keys", user.AllAuthenticated}}
	cases := []struct {
		name string
		attr authorizer.AttributesRecord
		want authorizer.Decision
	}{
		{"bridge impersonates a key user", authorizer.AttributesRecord{User: bridge, Verb: "impersonate", Resource: "users", Name: keyUser, ResourceRequest: true}, authorizer.DecisionAllow},
		{"bridge impersonates a named user", authorizer.AttributesRecord{User: bridge, Verb: "impersonate", Resource: "users", Name: AdminUser, ResourceRequest: true}, authorizer.DecisionDeny},
		{"bridge impersonates a group", authorizer.AttributesRecord{User: bridge, Verb: "impersonate", Resource: "groups", Name: user.SystemPrivilegedGroup, ResourceRequest: true}, authorizer.DecisionDeny},
		{"bridge impersonates an extra", authorizer.AttributesRecord{User: bridge, Verb: "impersonate", Resource: "userextras", Subresource: "scopes", Name: "x", ResourceRequest: true}, authorizer.DecisionDeny},
		{"bridge reads workloads itself", authorizer.AttributesRecord{User: bridge, Verb: "list", APIGroup: skiffv1alpha1.GroupName, Resource: "workloads", ResourceRequest: true}, authorizer.DecisionDeny},
		{"bridge reads discovery", authorizer.AttributesRecord{User: bridge, Verb: "get", Path: "/apis"}, authorizer.DecisionAllow},
		{"node impersonates a key user", authorizer.AttributesRecord{User: node, Verb: "impersonate", Resource: "users", Name: keyUser, ResourceRequest: true}, authorizer.DecisionDeny},
		// A key whose role grants impersonation (skiff:mcp) is still held
		// to key users.
		{"a key with a role impersonates a key user", authorizer.AttributesRecord{User: person, Verb: "impersonate", Resource: "users", Name: keyUser, ResourceRequest: true}, authorizer.DecisionAllow},
		{"a key with a role impersonates the admin", authorizer.AttributesRecord{User: person, Verb: "impersonate", Resource: "users", Name: AdminUser, ResourceRequest: true}, authorizer.DecisionDeny},
		{"a key with a role impersonates the admin's key", authorizer.AttributesRecord{User: person, Verb: "impersonate", Resource: "users", Name: identity.KeyUserName(admin.Public()), ResourceRequest: true}, authorizer.DecisionDeny},
		{"the bridge impersonates the admin's key", authorizer.AttributesRecord{User: bridge, Verb: "impersonate", Resource: "users", Name: identity.KeyUserName(admin.Public()), ResourceRequest: true}, authorizer.DecisionAllow},
		{"a key with a role impersonates a group", authorizer.AttributesRecord{User: person, Verb: "impersonate", Resource: "groups", Name: user.SystemPrivilegedGroup, ResourceRequest: true}, authorizer.DecisionDeny},
	}
	// RBAC that would allow anything of the person's key.
	roles := authorizer.AuthorizerFunc(func(_ context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
		if a.GetUser().GetName() == person.Name {
			return authorizer.DecisionAllow, "", nil
		}
		return authorizer.DecisionNoOpinion, "", nil
	})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, reason, err := authorize(context.Background(), tc.attr, authzDeps{roles: roles, static: static})
			if err != nil || got != tc.want {
				t.Fatalf("decision %v (%s, %v), want %v", got, reason, err, tc.want)
			}
		})
	}
}

// TestBridgeActsAsCaller drives the MCP bridge's identity against a real
// server: impersonating a key user, it acts with exactly the rights of
// whoever the key is trusted as, and the audit log names both.
func TestBridgeActsAsCaller(t *testing.T) {
	dir := t.TempDir()
	ts := startTestServer(t, dir)
	ctx := context.Background()
	bridgeCfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dir, MCPKubeconfigFile))
	if err != nil {
		t.Fatal(err)
	}
	as := func(t *testing.T, name string, groups ...string) client.Client {
		t.Helper()
		cfg := rest.CopyConfig(bridgeCfg)
		cfg.Impersonate = rest.ImpersonationConfig{UserName: name, Groups: groups}
		c, err := client.New(cfg, client.Options{Scheme: ts.scheme, Mapper: ts.client.RESTMapper()})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	admin, err := identity.ParseKeyPEM(mustRead(t, filepath.Join(dir, adminKeyFile)))
	if err != nil {
		t.Fatal(err)
	}
	nodeID, _ := identity.New()
	node := &skiffv1alpha1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Spec: skiffv1alpha1.NodeSpec{PublicKey: nodeID.PublicKeyString()}}
	if err := ts.client.Create(ctx, node); err != nil {
		t.Fatal(err)
	}
	stranger, _ := identity.New()

	t.Run("as the admin's key", func(t *testing.T) {
		if err := as(t, identity.KeyUserName(admin.Public())).Create(ctx, newWorkload("by-bridge", 1)); err != nil {
			t.Fatalf("create as the admin: %v", err)
		}
	})
	t.Run("as a node's key", func(t *testing.T) {
		c := as(t, identity.KeyUserName(nodeID.Public()))
		// The trust set learns the Node's key from a watch.
		eventually(t, 10*time.Second, "the node's key trusted", func() bool {
			return c.List(ctx, &skiffv1alpha1.NodeList{}) == nil
		})
		err := c.Create(ctx, newWorkload("by-node", 1))
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `node "n1" may not create workloads`) {
			t.Fatalf("create as the node: %v, want the node authorizer's Forbidden", err)
		}
	})
	t.Run("as an untrusted key", func(t *testing.T) {
		err := as(t, identity.KeyUserName(stranger.Public())).List(ctx, &skiffv1alpha1.WorkloadList{})
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "is not trusted") {
			t.Fatalf("list as a stranger: %v, want Forbidden: not trusted", err)
		}
	})
	t.Run("as a named user or group", func(t *testing.T) {
		if err := as(t, AdminUser).List(ctx, &skiffv1alpha1.WorkloadList{}); !apierrors.IsForbidden(err) {
			t.Fatalf("impersonating %s: %v, want Forbidden", AdminUser, err)
		}
		err := as(t, identity.KeyUserName(stranger.Public()), user.SystemPrivilegedGroup).List(ctx, &skiffv1alpha1.WorkloadList{})
		if !apierrors.IsForbidden(err) {
			t.Fatalf("impersonating group %s: %v, want Forbidden", user.SystemPrivilegedGroup, err)
		}
	})
	t.Run("by itself", func(t *testing.T) {
		c, err := client.New(bridgeCfg, client.Options{Scheme: ts.scheme})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.List(ctx, &skiffv1alpha1.WorkloadList{}); !apierrors.IsForbidden(err) {
			t.Fatalf("the bridge's own list: %v, want Forbidden", err)
		}
	})
	t.Run("audit names both", func(t *testing.T) {
		eventually(t, 30*time.Second, "the audit record of the bridge's create", func() bool {
			data, _ := os.ReadFile(filepath.Join(dir, auditLogFile))
			for _, line := range strings.Split(string(data), "\n") {
				if strings.Contains(line, `"verb":"create"`) && strings.Contains(line, `"name":"by-bridge"`) || strings.Contains(line, "by-bridge") && strings.Contains(line, `"verb":"create"`) {
					return strings.Contains(line, `"username":"skiff:mcp"`) &&
						strings.Contains(line, `"impersonatedUser":{"username":"`+identity.KeyUserName(admin.Public())) &&
						strings.Contains(line, `"`+CallerAuditAnnotation+`":"`+AdminUser+`"`)
				}
			}
			return false
		})
	})
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
