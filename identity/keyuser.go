package identity

import (
	"crypto/ed25519"
	"encoding/base64"
	"strings"
)

// KeyUserPrefix prefixes the user name that stands for a key rather than
// a person: skiff:key:<base64url key>. A bridge that acts for a caller
// (the MCP bridge over HTTP) impersonates this name, and the API server
// resolves it to whoever the key is trusted as.
const KeyUserPrefix = "skiff:key:"

// KeyUserName is the user name standing for pub: KeyUserPrefix and ID(pub).
func KeyUserName(pub ed25519.PublicKey) string {
	return KeyUserPrefix + ID(pub)
}

// ParseKeyUserName returns the key a KeyUserName stands for; ok is false
// for any other name.
func ParseKeyUserName(name string) (pub ed25519.PublicKey, ok bool) {
	enc, found := strings.CutPrefix(name, KeyUserPrefix)
	if !found {
		return nil, false
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(enc)
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, false
	}
	return ed25519.PublicKey(raw), true
}
