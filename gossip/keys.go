package gossip

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/hashicorp/memberlist"
)

// KeySize is the size of a gossip key: AES-256.
const KeySize = 32

// NewKey returns a fresh random AES-256 key.
func NewKey() ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("gossip key: %w", err)
	}
	return k, nil
}

// Fingerprint names a key without revealing it: the first 8 bytes of its
// SHA-256, in hex.
func Fingerprint(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:8])
}

// Keys is a keyring's content: the primary key (used to encrypt) first,
// then the others that are accepted for decryption. It is what the keyring
// file and the API's gossip endpoint hold.
type Keys struct {
	// Keys are base64 (standard) AES-256 keys, the primary first.
	Keys []string `json:"keys"`
}

// decode returns the raw keys, checking each.
func (k Keys) decode() ([][]byte, error) {
	if len(k.Keys) == 0 {
		return nil, errors.New("no gossip keys")
	}
	out := make([][]byte, 0, len(k.Keys))
	for i, s := range k.Keys {
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("gossip key %d: not base64: %w", i, err)
		}
		if len(raw) != KeySize {
			return nil, fmt.Errorf("gossip key %d: %d bytes, want %d (AES-256)", i, len(raw), KeySize)
		}
		out = append(out, raw)
	}
	return out, nil
}

func encodeKeys(keys [][]byte) Keys {
	out := Keys{Keys: make([]string, len(keys))}
	for i, k := range keys {
		out.Keys[i] = base64.StdEncoding.EncodeToString(k)
	}
	return out
}

// Keyring is memberlist's keyring plus the file that keeps it (0600).
// Every change is written to the file before it is used, so a member
// that restarts comes back with the keys it last had.
type Keyring struct {
	path string
	ring *memberlist.Keyring

	mu sync.Mutex // serialises changes and file writes
}

// LoadKeyring reads the keyring file at path.
func LoadKeyring(path string) (*Keyring, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gossip keyring: %w", err)
	}
	var k Keys
	if err := json.Unmarshal(data, &k); err != nil {
		return nil, fmt.Errorf("gossip keyring %s: %w", path, err)
	}
	kr, err := NewKeyring(path, k)
	if err != nil {
		return nil, fmt.Errorf("gossip keyring %s: %w", path, err)
	}
	return kr, nil
}

// LoadOrCreateKeyring reads the keyring at path, or makes one with a new
// key (the server's first start).
func LoadOrCreateKeyring(path string) (kr *Keyring, created bool, err error) {
	if _, err := os.Stat(path); err == nil {
		kr, err := LoadKeyring(path)
		return kr, false, err
	}
	key, err := NewKey()
	if err != nil {
		return nil, false, err
	}
	kr, err = NewKeyring(path, encodeKeys([][]byte{key}))
	if err != nil {
		return nil, false, err
	}
	return kr, true, nil
}

// NewKeyring makes a keyring holding keys and writes it to path (when
// path is not empty).
func NewKeyring(path string, keys Keys) (*Keyring, error) {
	raw, err := keys.decode()
	if err != nil {
		return nil, err
	}
	ring, err := memberlist.NewKeyring(raw, raw[0])
	if err != nil {
		return nil, err
	}
	kr := &Keyring{path: path, ring: ring}
	if err := kr.save(); err != nil {
		return nil, err
	}
	return kr, nil
}

// Keys returns the keys, the primary first.
func (kr *Keyring) Keys() Keys { return encodeKeys(kr.ordered()) }

// ordered returns the raw keys, the primary first.
func (kr *Keyring) ordered() [][]byte {
	primary := kr.ring.GetPrimaryKey()
	keys := [][]byte{primary}
	for _, k := range kr.ring.GetKeys() {
		if !slices.Equal(k, primary) {
			keys = append(keys, k)
		}
	}
	return keys
}

// Fingerprints returns the fingerprints of the keys and of the primary.
func (kr *Keyring) Fingerprints() (all []string, primary string) {
	for _, k := range kr.ring.GetKeys() {
		all = append(all, Fingerprint(k))
	}
	slices.Sort(all)
	return all, Fingerprint(kr.ring.GetPrimaryKey())
}

// Replace makes the keyring hold exactly keys (the primary first): a
// member that was away during a rotation catches up from the API server.
func (kr *Keyring) Replace(keys Keys) error {
	raw, err := keys.decode()
	if err != nil {
		return err
	}
	kr.mu.Lock()
	defer kr.mu.Unlock()
	for _, k := range raw {
		if err := kr.ring.AddKey(k); err != nil {
			return err
		}
	}
	if err := kr.ring.UseKey(raw[0]); err != nil {
		return err
	}
	for _, k := range kr.ring.GetKeys() {
		if !slices.ContainsFunc(raw, func(r []byte) bool { return slices.Equal(r, k) }) {
			if err := kr.ring.RemoveKey(k); err != nil {
				return err
			}
		}
	}
	return kr.saveLocked()
}

// apply performs one step of a rotation.
func (kr *Keyring) apply(op keyOp) error {
	raw, err := base64.StdEncoding.DecodeString(op.Key)
	if err != nil || len(raw) != KeySize {
		return fmt.Errorf("gossip key operation %s: not a base64 AES-256 key", op.Op)
	}
	kr.mu.Lock()
	defer kr.mu.Unlock()
	switch op.Op {
	case opInstall:
		err = kr.ring.AddKey(raw)
	case opUse:
		err = kr.ring.UseKey(raw)
	case opRemove:
		if slices.Equal(kr.ring.GetPrimaryKey(), raw) {
			return nil // never remove the key in use: the rotation went wrong elsewhere
		}
		err = kr.ring.RemoveKey(raw)
	default:
		return fmt.Errorf("gossip key operation %q: unknown", op.Op)
	}
	if err != nil {
		return fmt.Errorf("gossip key operation %s %s: %w", op.Op, Fingerprint(raw), err)
	}
	return kr.saveLocked()
}

func (kr *Keyring) save() error {
	kr.mu.Lock()
	defer kr.mu.Unlock()
	return kr.saveLocked()
}

// saveLocked writes the file atomically, 0600.
func (kr *Keyring) saveLocked() error {
	if kr.path == "" {
		return nil
	}
	data, err := json.Marshal(encodeKeys(kr.ordered()))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(kr.path), 0o700); err != nil {
		return fmt.Errorf("gossip keyring: %w", err)
	}
	tmp := kr.path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("gossip keyring: %w", err)
	}
	if err := os.Rename(tmp, kr.path); err != nil {
		return fmt.Errorf("gossip keyring: %w", err)
	}
	return nil
}

// Key operations, sent over gossip (so only to holders of a current key).
const (
	opInstall = "install"
	opUse     = "use"
	opRemove  = "remove"
)

// keyOp is one step of a rotation.
type keyOp struct {
	Op  string `json:"op"`
	Key string `json:"key"`
}
