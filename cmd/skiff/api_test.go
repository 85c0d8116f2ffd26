package main

import (
	"crypto/tls"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"skiff.dev/skiff/identity"
)

// signedEchoServer verifies each request's signature and answers with the
// signer's id, the method, target, Content-Type and body; /forbidden
// answers 403. It refuses a request that carries a client certificate.
func signedEchoServer(t *testing.T) *httptest.Server {
	t.Helper()
	v := identity.NewRequestVerifier(identity.VerifierOptions{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) > 0 {
			http.Error(w, "a client certificate was sent", http.StatusBadRequest)
			return
		}
		pub, err := v.Verify(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		if r.URL.Path == "/forbidden" {
			http.Error(w, "no, "+identity.KeyUserName(pub), http.StatusForbidden)
			return
		}
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s %s %s", identity.ID(pub), r.Method, r.URL.RequestURI(), r.Header.Get("Content-Type"), body)
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func TestAPISignedRequest(t *testing.T) {
	home := isolateHome(t)
	srv := signedEchoServer(t)
	p, _ := identity.NewPersonal("Ada", "", time.Now())
	if err := identity.SavePersonal(filepath.Join(home, "config", "skiff", "identity"), p, false); err != nil {
		t.Fatal(err)
	}
	// The kubeconfig carries a client certificate, which skiff api must not send.
	kubeconfig := filepath.Join(home, "kubeconfig")
	leafPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	data, err := personalKubeconfig(p, srv.URL, leafPEM, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kubeconfig, data, 0o600); err != nil {
		t.Fatal(err)
	}
	yamlFile := filepath.Join(home, "web.yaml")
	if err := os.WriteFile(yamlFile, []byte("kind: Workload\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pin := hex.EncodeToString(identity.CertificateHash(srv.Certificate()))
	cases := []struct {
		name, stdin string
		args        []string
		want        string
	}{
		{name: "GET prints the body", args: []string{"get", "/api/v1/namespaces?limit=1", "--kubeconfig", kubeconfig}, want: "GET /api/v1/namespaces?limit=1  "},
		{name: "a .yaml file is sent as application/yaml", args: []string{"POST", "/apis/x/v1/things", "-f", yamlFile, "--kubeconfig", kubeconfig}, want: "POST /apis/x/v1/things application/yaml kind: Workload\n"},
		{name: "stdin is sent as application/json", stdin: `{"a":1}`, args: []string{"PUT", "/x", "-f", "-", "--kubeconfig", kubeconfig}, want: `PUT /x application/json {"a":1}`},
		{name: "-H sets the Content-Type", stdin: `{"a":1}`, args: []string{"PATCH", "/x", "-f", "-", "-H", "Content-Type: application/merge-patch+json", "--kubeconfig", kubeconfig}, want: `PATCH /x application/merge-patch+json {"a":1}`},
		{name: "$KUBECONFIG is the default kubeconfig", args: []string{"GET", "/y"}, want: "GET /y  "},
		{name: "--server with --ca-hash needs no kubeconfig", args: []string{"GET", "/z", "--server", srv.URL, "--ca-hash", pin}, want: "GET /z  "},
	}
	t.Setenv("KUBECONFIG", kubeconfig)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, stderr, err := runSkiff(t, tc.stdin, append([]string{"api"}, tc.args...)...)
			if err != nil {
				t.Fatalf("%v (stderr %q)", err, stderr)
			}
			if want := p.ID() + " " + tc.want; out != want {
				t.Fatalf("stdout %q, want %q", out, want)
			}
		})
	}

	t.Run("a status other than 2xx prints the body to stderr and fails with the status", func(t *testing.T) {
		out, stderr, err := runSkiff(t, "", "api", "DELETE", "/forbidden", "--kubeconfig", kubeconfig)
		if err == nil || !strings.Contains(err.Error(), "403 Forbidden") || out != "" || !strings.Contains(stderr, "no, "+p.UserName()) {
			t.Fatalf("err %v, stdout %q, stderr %q; want 403 and the body on stderr", err, out, stderr)
		}
	})
	t.Run("a wrong --ca-hash is refused before anything is sent", func(t *testing.T) {
		_, _, err := runSkiff(t, "", "api", "GET", "/z", "--server", srv.URL, "--ca-hash", strings.Repeat("00", 32))
		if err == nil || !strings.Contains(err.Error(), "is not the --ca-hash") {
			t.Fatalf("%v, want the pin mismatch", err)
		}
	})
}

func TestAPIFlagValidation(t *testing.T) {
	isolateHome(t)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{name: "a path without a leading slash", args: []string{"GET", "api/v1"}, want: "want a path on the server"},
		{name: "a header without a colon", args: []string{"GET", "/x", "-H", "Accept"}, want: "want 'Name: value'"},
		{name: "a signature header", args: []string{"GET", "/x", "-H", "X-Auth-Signature: abc"}, want: "are the signature's"},
		{name: "--ca-hash without --server", args: []string{"GET", "/x", "--ca-hash", strings.Repeat("ab", 32)}, want: "need --server"},
		{name: "a missing identity", args: []string{"GET", "/x"}, want: "identity"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runSkiff(t, "", append([]string{"api"}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v, want an error saying %q", err, tc.want)
			}
		})
	}
}
