package identity

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// JoinToken is what a node agent needs to join a cluster: the hash of the
// apiserver's serving certificate, so the agent can trust the server before
// it has any other credential, and the shared secret the apiserver checks.
// Its text form is skiff1:<sha256 of the certificate, hex>:<secret, hex>.
type JoinToken struct {
	// CAHash is the SHA-256 of the serving certificate's DER bytes.
	CAHash []byte
	// Secret is the shared secret.
	Secret []byte
}

const joinTokenPrefix = "skiff1"

// NewJoinToken returns a token with a fresh secret for the certificate.
func NewJoinToken(servingCert *x509.Certificate) (JoinToken, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return JoinToken{}, err
	}
	return JoinToken{CAHash: CertificateHash(servingCert), Secret: secret}, nil
}

// CertificateHash is the SHA-256 of a certificate's DER bytes.
func CertificateHash(cert *x509.Certificate) []byte {
	h := sha256.Sum256(cert.Raw)
	return h[:]
}

// String renders the token.
func (t JoinToken) String() string {
	return joinTokenPrefix + ":" + hex.EncodeToString(t.CAHash) + ":" + hex.EncodeToString(t.Secret)
}

// ErrMalformedJoinToken is returned for text that is not a join token.
var ErrMalformedJoinToken = errors.New("malformed join token: want skiff1:<certificate sha256>:<secret>")

// ParseJoinToken reads a token's text form.
func ParseJoinToken(s string) (JoinToken, error) {
	parts := strings.Split(strings.TrimSpace(s), ":")
	if len(parts) != 3 || parts[0] != joinTokenPrefix {
		return JoinToken{}, ErrMalformedJoinToken
	}
	hash, err1 := hex.DecodeString(parts[1])
	secret, err2 := hex.DecodeString(parts[2])
	if err1 != nil || err2 != nil || len(hash) != sha256.Size || len(secret) < 16 {
		return JoinToken{}, ErrMalformedJoinToken
	}
	return JoinToken{CAHash: hash, Secret: secret}, nil
}

// SameSecret compares secrets in constant time.
func (t JoinToken) SameSecret(o JoinToken) bool {
	return len(t.Secret) > 0 && subtle.ConstantTimeCompare(t.Secret, o.Secret) == 1
}

// VerifyPinned checks that the peer's leaf certificate is the pinned one;
// use it as tls.Config.VerifyPeerCertificate with InsecureSkipVerify.
func (t JoinToken) VerifyPinned(rawCerts [][]byte, _ [][]*x509.Certificate) error {
	if len(rawCerts) == 0 {
		return errors.New("server presented no certificate")
	}
	h := sha256.Sum256(rawCerts[0])
	if subtle.ConstantTimeCompare(h[:], t.CAHash) != 1 {
		return fmt.Errorf("server certificate sha256 %x does not match the join token's %x", h[:], t.CAHash)
	}
	return nil
}
