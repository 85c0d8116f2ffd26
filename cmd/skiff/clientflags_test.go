package main

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"skiff.dev/skiff/identity"
)

// TestClientFlagsSeveralServers: --server with several URLs keeps the
// kubeconfig's credentials and certificate, and a request skips a server
// that is down.
func TestClientFlagsSeveralServers(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "serving.crt"), filepath.Join(dir, "serving.key")
	if err := identity.EnsureServingCert(certFile, keyFile, "test", nil); err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer the-token" {
			http.Error(w, "who?", http.StatusUnauthorized)
			return
		}
		io.WriteString(w, "ok")
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	err = clientcmd.WriteToFile(clientcmdapi.Config{
		Clusters:       map[string]*clientcmdapi.Cluster{"c": {Server: "https://192.0.2.1:6443", CertificateAuthorityData: ca}},
		AuthInfos:      map[string]*clientcmdapi.AuthInfo{"u": {Token: "the-token"}},
		Contexts:       map[string]*clientcmdapi.Context{"x": {Cluster: "c", AuthInfo: "u"}},
		CurrentContext: "x",
	}, kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	dead := "https://" + ln.Addr().String()

	cf := clientFlags{kubeconfig: kubeconfig, server: dead + "," + srv.URL}
	cfg, _, err := cf.config()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != dead || cfg.ServerName != identity.ServingName {
		t.Errorf("host %s server name %q, want the first server and %q", cfg.Host, cfg.ServerName, identity.ServingName)
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Get(cfg.Host + "/x")
	if err != nil {
		t.Fatalf("GET with the first server down: %v", err)
	}
	defer resp.Body.Close()
	if body, _ := io.ReadAll(resp.Body); string(body) != "ok" {
		t.Errorf("GET: %s %q, want ok from the second server", resp.Status, body)
	}

	cf.server = srv.URL + ",http://10.0.0.2:6443"
	if _, _, err := cf.config(); err == nil || !strings.Contains(err.Error(), `--server "http://10.0.0.2:6443"`) {
		t.Errorf("a server not https: %v, want an error naming it", err)
	}
}
