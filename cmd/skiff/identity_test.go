package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
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

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"skiff.dev/skiff/identity"
)

// runSkiff runs the skiff command line with args and stdin.
func runSkiff(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := newRootCommand()
	var out, errOut bytes.Buffer
	root.SetArgs(args)
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&errOut)
	err = root.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// isolateHome points the default identity and kubeconfig paths into a
// temporary directory.
func isolateHome(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, "config"))
	t.Setenv("KUBECONFIG", "")
	return home
}

// keyValues reads `key: value` lines.
func keyValues(t *testing.T, out string) map[string]string {
	t.Helper()
	kv := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			k, ok = strings.CutSuffix(line, ":")
		}
		if !ok {
			t.Fatalf("line %q is not `key: value`", line)
		}
		kv[k] = v
	}
	return kv
}

func TestIdentityNewAndShow(t *testing.T) {
	home := isolateHome(t)
	defaultPath := filepath.Join(home, "config", "skiff", "identity")
	out, _, err := runSkiff(t, "", "identity", "new", "--name", "Ada Lovelace", "--email", "ada@example.org")
	if err != nil {
		t.Fatal(err)
	}
	made := keyValues(t, out)
	p, err := identity.LoadPersonal(defaultPath)
	if err != nil {
		t.Fatalf("identity new did not write the default path: %v", err)
	}
	want := map[string]string{"id": p.ID(), "user": identity.KeyUserName(p.Public()), "public-key": p.PublicKeyString(), "file": defaultPath}
	for k, v := range want {
		if made[k] != v {
			t.Errorf("identity new: %s is %q, want %q", k, made[k], v)
		}
	}
	out, _, err = runSkiff(t, "", "identity", "show")
	if err != nil {
		t.Fatal(err)
	}
	shown := keyValues(t, out)
	want["name"], want["email"], want["created"] = "Ada Lovelace", "ada@example.org", p.Created.Format(time.RFC3339)
	for k, v := range want {
		if shown[k] != v {
			t.Errorf("identity show: %s is %q, want %q", k, shown[k], v)
		}
	}

	t.Run("a second identity new refuses to overwrite without --force", func(t *testing.T) {
		_, _, err := runSkiff(t, "", "identity", "new")
		if err == nil || !strings.Contains(err.Error(), "--force") {
			t.Fatalf("%v, want a refusal naming --force", err)
		}
		if _, _, err := runSkiff(t, "", "identity", "new", "--force", "--file", defaultPath); err != nil {
			t.Fatalf("with --force: %v", err)
		}
	})
	t.Run("identity show reads a plain key file", func(t *testing.T) {
		keyPEM, _ := p.KeyPEM()
		path := filepath.Join(home, "admin.key")
		if err := os.WriteFile(path, keyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		out, _, err := runSkiff(t, "", "identity", "show", "--file", path)
		if err != nil {
			t.Fatal(err)
		}
		if kv := keyValues(t, out); kv["id"] != p.ID() || kv["name"] != "" || kv["created"] != "" {
			t.Fatalf("plain key shown as %v", kv)
		}
	})
}

func TestKubeconfigFlagValidation(t *testing.T) {
	isolateHome(t)
	hash := strings.Repeat("ab", 32)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{name: "--server without --identity", args: []string{"--server", "https://x"}, want: "--server needs --identity"},
		{name: "an argument without --identity", args: []string{"extra"}, want: `unexpected argument "extra"`},
		{name: "--identity without --server", args: []string{"--identity"}, want: "--identity needs --server"},
		{name: "a server that is not https", args: []string{"--identity", "--server", "http://x:6443"}, want: "want https://host[:port]"},
		{name: "a --ca-hash that is not a sha256", args: []string{"--identity", "--server", "https://x", "--ca-hash", "abc"}, want: "want the 64 hex digits"},
		{name: "both --ca-hash and --certificate-authority", args: []string{"--identity", "--server", "https://x", "--ca-hash", hash, "--certificate-authority", "ca.crt"}, want: "pass one"},
		{name: "--renew with --identity", args: []string{"--identity", "--server", "https://x", "--renew"}, want: "--renew is for the admin kubeconfig"},
		{name: "a file both as value and argument", args: []string{"--identity=a", "b", "--server", "https://x"}, want: `unexpected argument "b"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runSkiff(t, "", append([]string{"kubeconfig"}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// whoAmIServer is a TLS server that wants a client certificate self-signed
// by its key and answers with the key's user name.
func whoAmIServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pub, err := identity.VerifySelfSigned(r.TLS.PeerCertificates[0], time.Now())
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, identity.KeyUserName(pub))
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func TestKubeconfigIdentity(t *testing.T) {
	home := isolateHome(t)
	srv := whoAmIServer(t)
	leaf := srv.Certificate()
	leafHash := hex.EncodeToString(identity.CertificateHash(leaf))
	leafPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw})
	caFile := filepath.Join(home, "ca.crt")
	if err := os.WriteFile(caFile, leafPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	idFile := filepath.Join(home, "me")
	p, _ := identity.NewPersonal("Ada", "", time.Now())
	if err := identity.SavePersonal(idFile, p, false); err != nil {
		t.Fatal(err)
	}
	if err := identity.SavePersonal(filepath.Join(home, "config", "skiff", "identity"), p, false); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		args     []string
		wantWarn bool
	}{
		{name: "trust on first use embeds the presented certificate and prints its hash", args: []string{"--identity=" + idFile}, wantWarn: true},
		{name: "a bare --identity takes the file that follows", args: []string{"--identity", idFile}, wantWarn: true},
		{name: "a bare --identity alone is the default identity", args: []string{"--identity"}, wantWarn: true},
		{name: "--ca-hash of the server's certificate embeds it without a warning", args: []string{"--identity=" + idFile, "--ca-hash", leafHash}},
		{name: "--certificate-authority is embedded as is", args: []string{"--identity=" + idFile, "--certificate-authority", caFile}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, stderr, err := runSkiff(t, "", append([]string{"kubeconfig", "--server", srv.URL, "-n", "team"}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			if warned := strings.Contains(stderr, "WARNING") && strings.Contains(stderr, leafHash); warned != tc.wantWarn {
				t.Errorf("stderr %q: warning with the hash %v, want %v", stderr, warned, tc.wantWarn)
			}
			checkPersonalKubeconfig(t, []byte(out), srv, leafPEM, p)
		})
	}

	t.Run("-o writes the file 0600", func(t *testing.T) {
		path := filepath.Join(home, "kube", "config")
		out, _, err := runSkiff(t, "", "kubeconfig", "--identity="+idFile, "--server", srv.URL, "--ca-hash", leafHash, "-o", path, "-n", "team")
		if err != nil || out != "" {
			t.Fatalf("%v, stdout %q", err, out)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
			t.Errorf("mode %v, want 0600", fi.Mode().Perm())
		}
		checkPersonalKubeconfig(t, data, srv, leafPEM, p)
	})
	t.Run("a --ca-hash of another certificate is refused", func(t *testing.T) {
		_, _, err := runSkiff(t, "", "kubeconfig", "--identity="+idFile, "--server", srv.URL, "--ca-hash", strings.Repeat("00", 32))
		if err == nil || !strings.Contains(err.Error(), "is not the --ca-hash") {
			t.Fatalf("%v, want the pin mismatch", err)
		}
	})
}

// checkPersonalKubeconfig: the kubeconfig trusts the server's certificate,
// names the namespace, and a client built from it is known to the server
// by p's key.
func checkPersonalKubeconfig(t *testing.T, data []byte, srv *httptest.Server, leafPEM []byte, p *identity.Personal) {
	t.Helper()
	cfg, err := clientcmd.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	ctx := cfg.Contexts[cfg.CurrentContext]
	if ctx == nil || ctx.Namespace != "team" || !bytes.Equal(cfg.Clusters[ctx.Cluster].CertificateAuthorityData, leafPEM) {
		t.Fatalf("kubeconfig context %+v; want namespace team and the server's certificate as its CA", ctx)
	}
	rc, err := clientcmd.NewDefaultClientConfig(*cfg, nil).ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(rc.CertData)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil || cert.Subject.CommonName != "Ada" {
		t.Fatalf("client certificate %v (%v), want common name Ada", cert.Subject, err)
	}
	client, err := rest.HTTPClientFor(rc)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Get(srv.URL + "/whoami")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(body) != p.UserName() {
		t.Fatalf("the server knows the kubeconfig as %d %q, want %q", resp.StatusCode, body, p.UserName())
	}
}
