package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Identity is an Ed25519 key pair.
type Identity struct {
	Private ed25519.PrivateKey
}

// New generates a fresh identity.
func New() (*Identity, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate ed25519 key: %w", err)
	}
	return &Identity{Private: priv}, nil
}

// Public returns the public key.
func (id *Identity) Public() ed25519.PublicKey {
	return id.Private.Public().(ed25519.PublicKey)
}

// PublicKeyString is the public key in standard base64: the form stored
// in Node.spec.publicKey and in trust files.
func (id *Identity) PublicKeyString() string {
	return EncodePublicKey(id.Public())
}

// EncodePublicKey renders a public key in standard base64.
func EncodePublicKey(pub ed25519.PublicKey) string {
	return base64.StdEncoding.EncodeToString(pub)
}

// KeyPEM is the private key as a PKCS#8 PEM block.
func (id *Identity) KeyPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(id.Private)
	if err != nil {
		return nil, fmt.Errorf("marshal ed25519 key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseKeyPEM reads a PKCS#8 PEM Ed25519 private key.
func ParseKeyPEM(data []byte) (*Identity, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("no PKCS#8 PRIVATE KEY PEM block")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key is %T, not Ed25519", key)
	}
	return &Identity{Private: priv}, nil
}

// LoadOrCreate reads the identity at path, creating it (mode 0600, parent
// directory 0700) when the file does not exist. created reports which.
func LoadOrCreate(path string) (id *Identity, created bool, err error) {
	data, err := os.ReadFile(path)
	if err == nil {
		id, err = ParseKeyPEM(data)
		if err != nil {
			return nil, false, fmt.Errorf("identity %q: %w", path, err)
		}
		return id, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("identity %q: %w", path, err)
	}
	id, err = New()
	if err != nil {
		return nil, false, err
	}
	pemBytes, err := id.KeyPEM()
	if err != nil {
		return nil, false, err
	}
	if err := WriteFileAtomic(path, pemBytes, 0o600); err != nil {
		return nil, false, fmt.Errorf("identity %q: %w", path, err)
	}
	return id, true, nil
}

// WriteFileAtomic writes data to path through a temporary file and a
// rename, so a crash never leaves a half-written key or certificate.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	// The rename is durable once the directory is: a power loss must not
	// bring back an older key file.
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ParsePublicKey reads a key in the form EncodePublicKey writes.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("public key: not standard base64: %w", err)
	}
	if len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("public key: %d bytes, an Ed25519 key has %d", len(raw), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(raw), nil
}
