package serverlist_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/apiserver"
	"skiff.dev/skiff/apiserver/rbac"
	"skiff.dev/skiff/apiserver/serverlist"
	"skiff.dev/skiff/identity"
)

func TestNamespaceIsTheSystemNamespace(t *testing.T) {
	if serverlist.Namespace != apiserver.SystemNamespace {
		t.Fatalf("serverlist.Namespace %q, apiserver.SystemNamespace %q", serverlist.Namespace, apiserver.SystemNamespace)
	}
}

// startServer runs an API server that serves the list, as `skiff server`
// wires it, and returns it with an admin client.
func startServer(t *testing.T) (*apiserver.Server, *rest.Config, client.Client) {
	t.Helper()
	cfg := apiserver.DefaultConfig()
	cfg.DataDir, cfg.Listen = t.TempDir(), "127.0.0.1:0"
	srv, err := apiserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := srv.AdminConfig()
	if err != nil {
		t.Fatal(err)
	}
	sch := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, skiffv1alpha1.AddToScheme} {
		if err := add(sch); err != nil {
			t.Fatal(err)
		}
	}
	c, err := client.New(admin, client.Options{Scheme: sch})
	if err != nil {
		t.Fatal(err)
	}
	srv.AddHandler(skiffv1alpha1.ServersPath, serverlist.NewHandler(c))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			t.Error("the API server did not stop within 60s")
		}
	})
	probe := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // readiness only
	}}
	eventually(t, "the API server ready", func() bool {
		resp, err := probe.Get(srv.URL() + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return srv, admin, c
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// keyConfig is admin's connection with id's self-signed certificate
// instead of the admin's.
func keyConfig(t *testing.T, admin *rest.Config, id *identity.Identity) *rest.Config {
	t.Helper()
	cert, err := id.ClientCertificate("tester", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	key, err := id.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	cfg := rest.AnonymousClientConfig(admin)
	cfg.CertData, cfg.KeyData = cert, key
	return cfg
}

// getServers GETs the list as cfg's user: the status, and the list when 200.
func getServers(t *testing.T, cfg *rest.Config, method string) (int, []string) {
	t.Helper()
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(method, cfg.Host+skiffv1alpha1.ServersPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, skiffv1alpha1.ServersPath, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil
	}
	var list serverlist.List
	if err := json.Unmarshal(body, &list); err != nil || list.Servers == nil {
		t.Fatalf("%s %s: %v in %s", method, skiffv1alpha1.ServersPath, err, body)
	}
	return resp.StatusCode, list.Servers
}

// TestServersAgainstAPIServer runs a server's Lease against a real API
// server: nodes, people's keys and the join token's user see its URL
// while it runs, and nothing once it stopped.
func TestServersAgainstAPIServer(t *testing.T) {
	srv, admin, c := startServer(t)
	ctx := context.Background()

	node := newIdentity(t)
	if err := c.Create(ctx, &skiffv1alpha1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Spec: skiffv1alpha1.NodeSpec{PublicKey: node.PublicKeyString()},
	}); err != nil {
		t.Fatal(err)
	}
	person := newIdentity(t)
	if err := c.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "person"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: identity.KeyUserName(person.Public())}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: rbac.ViewerRole},
	}); err != nil {
		t.Fatal(err)
	}
	token, err := os.ReadFile(filepath.Join(filepath.Dir(srv.KubeconfigPath()), apiserver.JoinTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	joiner := rest.AnonymousClientConfig(admin)
	joiner.BearerToken = strings.TrimSpace(string(token))
	users := map[string]*rest.Config{"node": keyConfig(t, admin, node), "person": keyConfig(t, admin, person), "join token": joiner}
	for who, cfg := range users {
		eventually(t, who+" authenticated", func() bool { code, _ := getServers(t, cfg, http.MethodGet); return code == http.StatusOK })
	}
	if code, _ := getServers(t, rest.AnonymousClientConfig(admin), http.MethodGet); code != http.StatusUnauthorized {
		t.Errorf("anonymous GET: %d, want 401", code)
	}
	if code, _ := getServers(t, users["node"], http.MethodPost); code != http.StatusForbidden {
		t.Errorf("a node's POST: %d, want 403", code)
	}

	stop := runLease(t, c, "server-1", srv.URL())
	for who, cfg := range users {
		eventually(t, who+" seeing the server", func() bool {
			_, servers := getServers(t, cfg, http.MethodGet)
			return slices.Equal(servers, []string{srv.URL()})
		})
	}

	// A server that died left its Lease: it is listed until it expires,
	// or until Remove deletes it.
	const deadURL = "https://127.0.0.2:6443"
	now := metav1.NowMicro()
	if err := c.Create(ctx, &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: serverlist.Namespace, Name: serverlist.LeaseName("server-2"),
			Labels:      map[string]string{skiffv1alpha1.ServerLeaseLabel: "true"},
			Annotations: map[string]string{skiffv1alpha1.ServerURLAnnotation: deadURL},
		},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("server-2"), LeaseDurationSeconds: ptr.To[int32](30), RenewTime: &now},
	}); err != nil {
		t.Fatal(err)
	}
	if _, servers := getServers(t, users["node"], http.MethodGet); !slices.Equal(servers, slices.Sorted(slices.Values([]string{deadURL, srv.URL()}))) {
		t.Fatalf("with a dead server's Lease: %v, want it and %s", servers, srv.URL())
	}
	if err := serverlist.Remove(ctx, c, "server-2"); err != nil {
		t.Fatal(err)
	}
	if _, servers := getServers(t, users["node"], http.MethodGet); !slices.Equal(servers, []string{srv.URL()}) {
		t.Fatalf("after Remove: %v, want only %s", servers, srv.URL())
	}

	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if _, servers := getServers(t, users["node"], http.MethodGet); len(servers) != 0 {
		t.Fatalf("after the server's Lease stopped: %v, want none", servers)
	}
}

// runLease runs server's Lease until stop, or the test's cleanup (which
// runs before the server stops: the Lease is deleted while it serves).
func runLease(t *testing.T, c client.Client, server, url string) (stop func() error) {
	t.Helper()
	lease, err := serverlist.NewLease(c, server, url)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lease.Run(ctx) }()
	stop = sync.OnceValue(func() error {
		cancel()
		if err := <-done; err != nil {
			return fmt.Errorf("lease %s: Run: %w", server, err)
		}
		return nil
	})
	t.Cleanup(func() { _ = stop() })
	return stop
}

func newIdentity(t *testing.T) *identity.Identity {
	t.Helper()
	id, err := identity.New()
	if err != nil {
		t.Fatal(err)
	}
	return id
}
