package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"skiff.dev/skiff/identity"
)

// hostile is a client of the running server as an attacker holds one: the
// server's certificate trusted, and whatever credential the case brings.
type hostile struct {
	t    *testing.T
	s    *server
	pool *x509.CertPool
}

func newHostile(t *testing.T, s *server) *hostile {
	t.Helper()
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(filepath.Join(s.dataDir, "serving.crt"))
	if err != nil || !pool.AppendCertsFromPEM(ca) {
		t.Fatalf("serving certificate: %v", err)
	}
	return &hostile{t: t, s: s, pool: pool}
}

// client presents cert (none if nil).
func (h *hostile) client(cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: h.pool}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

// do sends one request and returns its status and the start of its body.
func (h *hostile) do(c *http.Client, method, path, body string, header ...string) (int, string) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.s.url+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
	return resp.StatusCode, string(b)
}

// keyCert is a self-signed client certificate of id valid from now.
func keyCert(t *testing.T, id *identity.Identity, now time.Time) *tls.Certificate {
	t.Helper()
	certPEM, err := id.ClientCertificate("hostile", now)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := id.KeyPEM()
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &cert
}

// ecdsaCert is a self-signed P-256 client certificate: not an Ed25519 key.
func ecdsaCert(t *testing.T) *tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "admin"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestHostile drives the built server as an attacker would, with raw
// HTTPS requests, and counts the probes. Each names what it tries and
// the answer a correct server gives.
func TestHostile(t *testing.T) {
	s := startServer(t, t.TempDir(), "127.0.0.1:0")
	h := newHostile(t, s)
	admin, _, err := identity.LoadOrCreate(filepath.Join(s.dataDir, "admin.key"))
	if err != nil {
		t.Fatal(err)
	}
	token, err := os.ReadFile(filepath.Join(s.dataDir, "join-token"))
	if err != nil {
		t.Fatal(err)
	}
	bearer := "Bearer " + strings.TrimSpace(string(token))
	stranger, _ := identity.New()
	anon, adm := h.client(nil), h.client(keyCert(t, admin, time.Now()))
	const wl = "/apis/skiff.dev/v1alpha1/namespaces/default/workloads"
	const inst = "/apis/skiff.dev/v1alpha1/namespaces/default/instances"
	const nodes = "/apis/skiff.dev/v1alpha1/nodes"

	// A node of the attacker's, registered with the join token.
	nodeKey, _ := identity.New()
	if code, body := h.do(anon, "POST", nodes, fmt.Sprintf(`{"apiVersion":"skiff.dev/v1alpha1","kind":"Node","metadata":{"name":"evil"},"spec":{"publicKey":%q}}`, nodeKey.PublicKeyString()), "Authorization", bearer); code != http.StatusCreated {
		t.Fatalf("registering a node: %d %s", code, body)
	}
	node := h.client(keyCert(t, nodeKey, time.Now()))
	waitFor(t, 30*time.Second, func() (bool, error) { c, _ := h.do(node, "GET", nodes+"/evil", ""); return c == http.StatusOK, nil })
	if code, body := h.do(adm, "POST", nodes, `{"apiVersion":"skiff.dev/v1alpha1","kind":"Node","metadata":{"name":"victim"}}`); code != http.StatusCreated {
		t.Fatalf("admin creates a node: %d %s", code, body)
	}
	keyed, _ := identity.New()
	if code, body := h.do(adm, "POST", nodes, fmt.Sprintf(`{"apiVersion":"skiff.dev/v1alpha1","kind":"Node","metadata":{"name":"keyed"},"spec":{"publicKey":%q}}`, keyed.PublicKeyString())); code != http.StatusCreated {
		t.Fatalf("admin creates a node with a key: %d %s", code, body)
	}
	// withoutKey answers 200 only when the read succeeded and did not
	// show node keyed's public key.
	withoutKey := func(code int, body string) (int, string) {
		if strings.Contains(body, keyed.PublicKeyString()) {
			return 600, "the answer holds node keyed's public key"
		}
		return code, body
	}

	probes := []struct {
		name string
		do   func() (int, string)
		want int
	}{
		{"no certificate", func() (int, string) { return h.do(anon, "GET", wl, "") }, 401},
		{"a certificate of a key nobody trusts", func() (int, string) { return h.do(h.client(keyCert(t, stranger, time.Now())), "GET", wl, "") }, 401},
		{"a P-256 certificate named admin", func() (int, string) { return h.do(h.client(ecdsaCert(t)), "GET", wl, "") }, 401},
		{"the admin's key, certificate expired", func() (int, string) {
			return h.do(h.client(keyCert(t, admin, time.Now().Add(-2*identity.ClientCertValidity))), "GET", wl, "")
		}, 401},
		{"the admin's key, certificate not valid yet", func() (int, string) {
			return h.do(h.client(keyCert(t, admin, time.Now().Add(24*time.Hour))), "GET", wl, "")
		}, 401},
		{"a junk bearer token", func() (int, string) { return h.do(anon, "GET", wl, "", "Authorization", "Bearer junk") }, 401},
		{"/readyz with a junk Authorization header", func() (int, string) { return h.do(anon, "GET", "/readyz", "", "Authorization", "Bearer junk") }, 200},
		{"/livez with an untrusted certificate", func() (int, string) { return h.do(h.client(keyCert(t, stranger, time.Now())), "GET", "/livez", "") }, 200},
		{"the join token reads a Node", func() (int, string) { return h.do(anon, "GET", nodes+"/victim", "", "Authorization", bearer) }, 403},
		{"the join token reads a Node that does not exist", func() (int, string) { return h.do(anon, "GET", nodes+"/nobody", "", "Authorization", bearer) }, 403},
		{"the join token lists Instances", func() (int, string) { return h.do(anon, "GET", inst, "", "Authorization", bearer) }, 403},
		{"the join token registers a control-plane label", func() (int, string) {
			k, _ := identity.New()
			return h.do(anon, "POST", nodes, fmt.Sprintf(`{"apiVersion":"skiff.dev/v1alpha1","kind":"Node","metadata":{"name":"boss","labels":{"node-role.kubernetes.io/control-plane":""}},"spec":{"publicKey":%q}}`, k.PublicKeyString()), "Authorization", bearer)
		}, 403},
		{"the join token registers the admin's key", func() (int, string) {
			return h.do(anon, "POST", nodes, fmt.Sprintf(`{"apiVersion":"skiff.dev/v1alpha1","kind":"Node","metadata":{"name":"mimic"},"spec":{"publicKey":%q}}`, admin.PublicKeyString()), "Authorization", bearer)
		}, 403},
		{"a node writes another node's status", func() (int, string) {
			return h.do(node, "PATCH", nodes+"/victim/status", `{"status":{"phase":"Down"}}`, "Content-Type", "application/merge-patch+json")
		}, 403},
		{"a node untaints itself", func() (int, string) {
			return h.do(node, "PATCH", nodes+"/evil", `{"spec":{"unschedulable":false,"taints":[]}}`, "Content-Type", "application/merge-patch+json")
		}, 403},
		{"a node lists every Instance", func() (int, string) { return h.do(node, "GET", inst, "") }, 403},
		{"a node reads another node's metrics", func() (int, string) { return h.do(node, "GET", nodes+"/victim/metrics", "") }, 403},
		{"a stranger reads a node's metrics", func() (int, string) {
			return h.do(h.client(keyCert(t, stranger, time.Now())), "GET", nodes+"/evil/metrics", "")
		}, 401},
		{"a node reads another Node's public key", func() (int, string) { return withoutKey(h.do(node, "GET", nodes+"/keyed", "")) }, 200},
		{"a node lists another Node's public key", func() (int, string) {
			return withoutKey(h.do(node, "GET", nodes+"?fieldSelector=metadata.name%3Dkeyed", ""))
		}, 200},
		{"a node reads the API server's client key for agents", func() (int, string) { return h.do(node, "GET", "/skiff/apiserver-client-key", "") }, 200},
		{"a stranger reads the API server's client key for agents", func() (int, string) {
			return h.do(h.client(keyCert(t, stranger, time.Now())), "GET", "/skiff/apiserver-client-key", "")
		}, 401},
		{"a node lists Workloads", func() (int, string) { return h.do(node, "GET", wl, "") }, 403},
		{"a node records an event about a Workload", func() (int, string) {
			return h.do(node, "POST", "/api/v1/namespaces/default/events", `{"apiVersion":"v1","kind":"Event","metadata":{"name":"lie"},"involvedObject":{"kind":"Workload","namespace":"default","name":"web"},"reason":"Hacked","message":"x"}`)
		}, 403},
		{"a node points its agent endpoint at etcd's port elsewhere", func() (int, string) {
			return h.do(node, "PATCH", nodes+"/evil/status", `{"status":{"agentEndpoint":"192.0.2.1:2379"}}`, "Content-Type", "application/merge-patch+json")
		}, 422},
		{"a node reports allocatable above capacity", func() (int, string) {
			return h.do(node, "PATCH", nodes+"/evil/status", `{"status":{"capacity":{"cpu":"2"},"allocatable":{"cpu":"64"}}}`, "Content-Type", "application/merge-patch+json")
		}, 422},
		{"a cpu of 1e400", func() (int, string) {
			return h.do(adm, "POST", inst, `{"apiVersion":"skiff.dev/v1alpha1","kind":"Instance","metadata":{"name":"huge"},"spec":{"containers":[{"name":"c","image":"x","resources":{"requests":{"cpu":"1e400"}}}]}}`)
		}, 422},
		{"malformed JSON", func() (int, string) { return h.do(adm, "POST", wl, `{"apiVersion":`) }, 400},
		{"an unknown field, strictly", func() (int, string) {
			return h.do(adm, "POST", wl+"?fieldValidation=Strict", `{"apiVersion":"skiff.dev/v1alpha1","kind":"Workload","metadata":{"name":"w"},"spec":{"replicas":1,"bogus":1,"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"x"}]}}}}`)
		}, 400},
		{"a 4 MiB body", func() (int, string) {
			return h.do(adm, "POST", wl, `{"apiVersion":"skiff.dev/v1alpha1","kind":"Workload","metadata":{"name":"big","annotations":{"a":"`+strings.Repeat("x", 4<<20)+`"}}}`)
		}, 413},
	}
	failed := 0
	for _, p := range probes {
		if code, body := p.do(); code != p.want {
			failed++
			t.Errorf("%s: %d, want %d: %s", p.name, code, p.want, body)
		}
	}
	// Guessing the join token: ten tries, then 429 for that address.
	guesses := 0
	for range 20 {
		code, _ := h.do(anon, "GET", nodes, "", "Authorization", "Bearer skiff-join.guess")
		if code == http.StatusTooManyRequests {
			break
		}
		guesses++
	}
	if guesses > 10 {
		failed++
		t.Errorf("%d wrong join tokens answered before a 429, want at most 10", guesses)
	}
	t.Logf("%d hostile probes, %d answered wrongly (and the unit tests' escapes: layer entries, agent endpoints, floods)", len(probes)+1, failed)
}
