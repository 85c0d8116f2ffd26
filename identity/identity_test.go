package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func parseCert(t *testing.T, p []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(p)
	if block == nil {
		t.Fatal("no PEM block")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSelfSignedCertificateVerifies(t *testing.T) {
	id, err := New()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	p, err := id.ClientCertificate("alice", now)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := VerifySelfSigned(parseCert(t, p), now)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if !pub.Equal(id.Public()) {
		t.Fatal("verified key differs from the identity's")
	}
	if _, err := VerifySelfSigned(parseCert(t, p), now.Add(ClientCertValidity+time.Hour)); !errors.Is(err, ErrExpired) {
		t.Fatalf("after expiry: %v, want ErrExpired", err)
	}
}

func TestCertificateSignedByAnotherKeyIsRejected(t *testing.T) {
	subject, _ := New()
	signer, _ := New()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mallory"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	// Issuer equals subject, but the signature is another key's.
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, subject.Public(), signer.Private)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifySelfSigned(cert, time.Now()); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("forged certificate: %v, want ErrBadSignature", err)
	}
}

func TestNonEd25519CertificateIsRejected(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ec"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	cert, _ := x509.ParseCertificate(der)
	if _, err := VerifySelfSigned(cert, time.Now()); !errors.Is(err, ErrNotEd25519) {
		t.Fatalf("ECDSA certificate: %v, want ErrNotEd25519", err)
	}
}

func TestLoadOrCreateKeepsTheKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "id.key")
	first, created, err := LoadOrCreate(path)
	if err != nil || !created {
		t.Fatalf("first: created %v err %v", created, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v, want 0600", st.Mode(), err)
	}
	second, created, err := LoadOrCreate(path)
	if err != nil || created {
		t.Fatalf("second: created %v err %v", created, err)
	}
	if !first.Public().Equal(second.Public()) {
		t.Fatal("reloaded key differs")
	}
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreate(path); err == nil {
		t.Fatal("corrupt key file accepted")
	}
}

func TestTrustLookup(t *testing.T) {
	tr := NewTrust()
	a, _ := New()
	b, _ := New()
	tr.Add(a.Public(), Principal{Name: "a", Groups: []string{"g"}})
	if p, ok := tr.Lookup(a.Public()); !ok || p.Name != "a" {
		t.Fatalf("lookup a: %v %v", p, ok)
	}
	if _, ok := tr.Lookup(b.Public()); ok {
		t.Fatal("untrusted key found")
	}
}
