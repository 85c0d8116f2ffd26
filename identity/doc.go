// Package identity holds skiff's Ed25519 identities: keys on disk, the
// self-signed client certificates that carry them over TLS (kubectl uses
// them from a kubeconfig), and the check that a presented certificate is
// self-signed by the key it names. Trust is by public key, not by a CA.
// Also: personal identities (a key with a name, email and creation time in
// one file, personal.go), the user names that stand for a key
// (KeyUserName: how the API server knows a person), signed requests for
// clients without a certificate (signing.go), join tokens, and self-signed
// serving certificates.
package identity
