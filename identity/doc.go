// Package identity holds skiff's Ed25519 identities: keys on disk, the
// self-signed client certificates that carry them over TLS (kubectl uses
// them from a kubeconfig), and the check that a presented certificate is
// self-signed by the key it names. Trust is by public key, not by a CA.
// Also: the user names that stand for a key (KeyUserName, for bridges
// acting as a caller), join tokens, and self-signed serving certificates.
package identity
