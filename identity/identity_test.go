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

func TestCertFileRenewsBeforeExpiry(t *testing.T) {
	id, err := New()
	if err != nil {
		t.Fatal(err)
	}
	f := CertFile{ID: id, CommonName: "skiff:node:n1", Path: filepath.Join(t.TempDir(), "node.crt")}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if wrote, err := f.Ensure(start, false); err != nil || !wrote {
		t.Fatalf("first Ensure: wrote %v, %v", wrote, err)
	}
	cert, err := f.Read()
	if err != nil {
		t.Fatal(err)
	}
	if life := cert.NotAfter.Sub(start); life > 366*24*time.Hour || life < 364*24*time.Hour {
		t.Errorf("a client certificate lives %v, want a year", life)
	}
	if info, _ := os.Stat(f.Path); info.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", info.Mode().Perm())
	}
	for _, tc := range []struct {
		at    time.Duration
		renew bool
	}{
		{30 * 24 * time.Hour, false},
		{200 * 24 * time.Hour, false},
		{250 * 24 * time.Hour, true}, // two thirds of a year have passed
		{400 * 24 * time.Hour, true}, // expired
	} {
		if got := NeedsRenewal(cert, start.Add(tc.at)); got != tc.renew {
			t.Errorf("after %v: renew %v, want %v", tc.at, got, tc.renew)
		}
	}
	if wrote, _ := f.Ensure(start.Add(30*24*time.Hour), false); wrote {
		t.Error("a fresh certificate was renewed")
	}
	later := start.Add(250 * 24 * time.Hour)
	if wrote, err := f.Ensure(later, false); err != nil || !wrote {
		t.Fatalf("Ensure when due: wrote %v, %v", wrote, err)
	}
	renewed, _ := f.Read()
	if _, err := VerifySelfSigned(renewed, later.Add(300*24*time.Hour)); err != nil {
		t.Errorf("the renewed certificate: %v", err)
	}
	other, _ := New()
	g := CertFile{ID: other, CommonName: f.CommonName, Path: f.Path}
	if wrote, _ := g.Ensure(later, false); !wrote {
		t.Error("a certificate of another key was kept")
	}
	if tc, err := g.TLSCertificate(); err != nil || tc.Leaf == nil && len(tc.Certificate) == 0 {
		t.Errorf("TLSCertificate: %v", err)
	}
}
