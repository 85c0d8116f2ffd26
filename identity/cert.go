package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// ClientCertValidity is how long a self-signed client certificate lasts:
// a year, as kubeadm's. Long-running clients renew theirs (CertFile).
const ClientCertValidity = 365 * 24 * time.Hour

// ClientCertificate returns a PEM certificate for the identity, self-signed
// by its own key, with commonName as its subject. The apiserver ignores the
// subject for trust: only the key matters.
func (id *Identity) ClientCertificate(commonName string, now time.Time) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: commonName, Organization: []string{"skiff"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(ClientCertValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, id.Public(), id.Private)
	if err != nil {
		return nil, fmt.Errorf("self-sign client certificate for %q: %w", commonName, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// Errors from VerifySelfSigned, for errors.Is.
var (
	ErrNotEd25519   = errors.New("certificate key is not Ed25519")
	ErrBadSignature = errors.New("certificate is not self-signed by its key")
	ErrExpired      = errors.New("certificate is outside its validity period")
)

// VerifySelfSigned checks that cert carries an Ed25519 key, is signed by
// that same key, and is valid at now. It returns the key.
func VerifySelfSigned(cert *x509.Certificate, now time.Time) (ed25519.PublicKey, error) {
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok {
		return nil, ErrNotEd25519
	}
	if cert.SignatureAlgorithm != x509.PureEd25519 {
		return nil, ErrBadSignature
	}
	if !bytes.Equal(cert.RawSubject, cert.RawIssuer) {
		return nil, ErrBadSignature
	}
	if err := cert.CheckSignature(x509.PureEd25519, cert.RawTBSCertificate, cert.Signature); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return nil, ErrExpired
	}
	return pub, nil
}
