package identity

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// JoinToken is what a node agent needs to join a cluster: the hash of the
// apiserver's serving certificate, so the agent can trust the server before
// it has any other credential, and the shared secret the apiserver checks.
// Its text form is skiff1:<sha256 of the certificate, hex>:<id>.<secret,
// hex>; the token a server writes at first start has no id
// (skiff1:<hash>:<secret>) and stands for InitialJoinTokenID.
type JoinToken struct {
	// CAHash is the SHA-256 of the serving certificate's DER bytes.
	CAHash []byte
	// ID names the token (public: it is how the server finds the token's
	// record and how `skiff token revoke` names it).
	ID string
	// Secret is the shared secret.
	Secret []byte
}

// InitialJoinTokenID is the id of the token written at first start.
const InitialJoinTokenID = "initial"

// JoinTokenIDLength is the length of a generated token id.
const JoinTokenIDLength = 6

// TokenID is the token's id: its own, or InitialJoinTokenID.
func (t JoinToken) TokenID() string {
	if t.ID == "" {
		return InitialJoinTokenID
	}
	return t.ID
}

// SecretHash is the SHA-256 of the secret: what the server stores.
func (t JoinToken) SecretHash() []byte {
	h := sha256.Sum256(t.Secret)
	return h[:]
}

// NewJoinTokenWithID returns a token with a fresh id and secret.
func NewJoinTokenWithID(servingCert *x509.Certificate) (JoinToken, error) {
	t, err := NewJoinToken(servingCert)
	if err != nil {
		return JoinToken{}, err
	}
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, JoinTokenIDLength)
	if _, err := rand.Read(b); err != nil {
		return JoinToken{}, err
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	t.ID = string(b)
	return t, nil
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
	secret := hex.EncodeToString(t.Secret)
	if t.ID != "" {
		secret = t.ID + "." + secret
	}
	return joinTokenPrefix + ":" + hex.EncodeToString(t.CAHash) + ":" + secret
}

// ReadJoinToken accepts the token itself or the path of a file holding
// it; flag names where it came from in the errors (e.g. "--join-token").
func ReadJoinToken(flag, s string) (JoinToken, error) {
	if tok, err := ParseJoinToken(s); err == nil {
		return tok, nil
	}
	data, err := os.ReadFile(s)
	if err != nil {
		return JoinToken{}, fmt.Errorf("%s: neither a token nor a readable file: %w", flag, err)
	}
	tok, err := ParseJoinToken(string(data))
	if err != nil {
		return JoinToken{}, fmt.Errorf("%s %s: %w", flag, s, err)
	}
	return tok, nil
}

// ErrMalformedJoinToken is returned for text that is not a join token.
var ErrMalformedJoinToken = errors.New("malformed join token: want skiff1:<certificate sha256>:<id>.<secret>")

// ParseJoinToken reads a token's text form.
func ParseJoinToken(s string) (JoinToken, error) {
	parts := strings.Split(strings.TrimSpace(s), ":")
	if len(parts) != 3 || parts[0] != joinTokenPrefix {
		return JoinToken{}, ErrMalformedJoinToken
	}
	id, secretHex, hasID := strings.Cut(parts[2], ".")
	if !hasID {
		id, secretHex = "", parts[2]
	} else if !validTokenID(id) {
		return JoinToken{}, ErrMalformedJoinToken
	}
	hash, err1 := hex.DecodeString(parts[1])
	secret, err2 := hex.DecodeString(secretHex)
	if err1 != nil || err2 != nil || len(hash) != sha256.Size || len(secret) < 16 {
		return JoinToken{}, ErrMalformedJoinToken
	}
	return JoinToken{CAHash: hash, ID: id, Secret: secret}, nil
}

// validTokenID: a generated id, lower-case letters and digits.
func validTokenID(id string) bool {
	if len(id) != JoinTokenIDLength {
		return false
	}
	for _, c := range id {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
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
