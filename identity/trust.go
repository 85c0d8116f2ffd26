package identity

import (
	"crypto/ed25519"
	"sync"
)

// Principal is who a trusted key belongs to.
type Principal struct {
	// Name is the user name the apiserver sees.
	Name string
	// Groups are the user's groups (e.g. system:masters for admins).
	Groups []string
}

// Trust maps public keys to principals. It is safe for concurrent use.
type Trust struct {
	mu   sync.RWMutex
	keys map[string]Principal
}

// NewTrust returns an empty trust set.
func NewTrust() *Trust {
	return &Trust{keys: map[string]Principal{}}
}

// Add trusts pub as p, replacing any earlier entry for the key.
func (t *Trust) Add(pub ed25519.PublicKey, p Principal) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.keys[string(pub)] = p
}

// Lookup returns the principal for pub.
func (t *Trust) Lookup(pub ed25519.PublicKey) (Principal, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	p, ok := t.keys[string(pub)]
	return p, ok
}

// Remove stops trusting pub.
func (t *Trust) Remove(pub ed25519.PublicKey) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.keys, string(pub))
}
