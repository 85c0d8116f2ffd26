package apiserver

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"skiff.dev/skiff/identity"
)

// BenchmarkAuthentication measures the key authenticator on its three
// paths for a key user known by a binding: a client certificate seen
// before (its self-signature check cached), a certificate never seen, and
// a signed request (each with a fresh signature, as every real one has).
func BenchmarkAuthentication(b *testing.B) {
	id, err := identity.New()
	if err != nil {
		b.Fatal(err)
	}
	name := identity.KeyUserName(id.Public())
	keys := keyUsers{trust: identity.NewTrust(), known: func(n string) bool { return n == name }}
	a := newKeyAuthenticator(keys, nil, time.Now)
	a.signed = identity.NewRequestVerifier(identity.VerifierOptions{KeyAllowed: keys.allowed})
	const path = "https://skiff/apis/skiff.dev/v1alpha1/namespaces/default/workloads"
	withCert := func(c *x509.Certificate) *http.Request {
		req := httptest.NewRequest("GET", path, nil)
		req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}}
		return req
	}
	authenticate := func(b *testing.B, req *http.Request) {
		resp, ok, err := a.AuthenticateRequest(req)
		if !ok || err != nil || resp.User.GetName() != name {
			b.Fatalf("not authenticated as %s: %v", name, err)
		}
	}

	b.Run("client certificate cached", func(b *testing.B) {
		req := withCert(benchCert(b, id))
		authenticate(b, req)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			authenticate(b, req)
		}
	})
	b.Run("client certificate uncached", func(b *testing.B) {
		reqs := make([]*http.Request, b.N)
		for i := range reqs {
			reqs[i] = withCert(benchCert(b, id))
		}
		b.ReportAllocs()
		b.ResetTimer()
		for _, req := range reqs {
			authenticate(b, req)
		}
	})
	b.Run("signed request", func(b *testing.B) {
		reqs := make([]*http.Request, b.N)
		now := time.Now()
		for i := range reqs {
			reqs[i] = httptest.NewRequest("GET", path, nil)
			// A distinct timestamp each: the same signature twice is a replay.
			if err := id.SignRequest(reqs[i], now.Add(time.Duration(i))); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		for _, req := range reqs {
			authenticate(b, req)
		}
	})
}

// benchCert is a fresh self-signed certificate of id.
func benchCert(b *testing.B, id *identity.Identity) *x509.Certificate {
	b.Helper()
	p, err := id.ClientCertificate("bench", time.Now())
	if err != nil {
		b.Fatal(err)
	}
	block, _ := pem.Decode(p)
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		b.Fatal(err)
	}
	return c
}
