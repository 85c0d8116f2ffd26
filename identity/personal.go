package identity

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"
)

// ID is the id of the identity whose key is pub: the key in unpadded
// base64url, the text KeyUserName puts after KeyUserPrefix.
func ID(pub ed25519.PublicKey) string {
	return base64.RawURLEncoding.EncodeToString(pub)
}

// Personal is a person's identity: a key, and who holds it. Name and Email
// are for people reading the file; the API server knows the key alone (as
// KeyUserName, until a trust entry names it).
type Personal struct {
	*Identity
	// Name is the holder's display name; may be empty.
	Name string
	// Email is the holder's address; may be empty.
	Email string
	// Created is when the key was made; zero for a plain key file.
	Created time.Time
}

// PEM headers of a personal identity file.
const (
	personalHeaderName    = "Name"
	personalHeaderEmail   = "Email"
	personalHeaderCreated = "Created"
)

// NewPersonal generates a personal identity for name and email, created
// at now.
func NewPersonal(name, email string, now time.Time) (*Personal, error) {
	id, err := New()
	if err != nil {
		return nil, err
	}
	p := &Personal{Identity: id, Name: strings.TrimSpace(name), Email: strings.TrimSpace(email), Created: now.UTC().Truncate(time.Second)}
	return p, nil
}

// ID is the identity's id.
func (p *Personal) ID() string { return ID(p.Public()) }

// UserName is the name the API server gives the key.
func (p *Personal) UserName() string { return KeyUserName(p.Public()) }

// DisplayName is Name, or the user name when there is none.
func (p *Personal) DisplayName() string {
	if p.Name != "" {
		return p.Name
	}
	return p.UserName()
}

// PEM is the identity file: the PKCS#8 key with Name, Email and Created
// as PEM headers.
func (p *Personal) PEM() ([]byte, error) {
	keyPEM, err := p.KeyPEM()
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(keyPEM)
	block.Headers = map[string]string{}
	for header, value := range map[string]string{personalHeaderName: p.Name, personalHeaderEmail: p.Email} {
		if value == "" {
			continue
		}
		if err := checkHeaderValue(value); err != nil {
			return nil, fmt.Errorf("%s %q: %w", strings.ToLower(header), value, err)
		}
		block.Headers[header] = value
	}
	if !p.Created.IsZero() {
		block.Headers[personalHeaderCreated] = p.Created.UTC().Format(time.RFC3339)
	}
	return pem.EncodeToMemory(block), nil
}

// checkHeaderValue refuses what a PEM header line cannot hold as is.
func checkHeaderValue(v string) error {
	if strings.TrimSpace(v) != v {
		return errors.New("leading or trailing blanks")
	}
	if strings.ContainsFunc(v, unicode.IsControl) {
		return errors.New("a control character (a line break?)")
	}
	return nil
}

// ParsePersonalPEM reads an identity file, or a plain PKCS#8 key (such as
// the server's admin.key), which has no name, email or creation time.
func ParsePersonalPEM(data []byte) (*Personal, error) {
	id, err := ParseKeyPEM(data)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	p := &Personal{Identity: id, Name: block.Headers[personalHeaderName], Email: block.Headers[personalHeaderEmail]}
	if created, ok := block.Headers[personalHeaderCreated]; ok {
		if p.Created, err = time.Parse(time.RFC3339, created); err != nil {
			return nil, fmt.Errorf("%s header: %w", personalHeaderCreated, err)
		}
	}
	return p, nil
}

// SavePersonal writes p to path (0600, directory 0700). It refuses to
// replace an existing file unless force is set.
func SavePersonal(path string, p *Personal, force bool) error {
	data, err := p.PEM()
	if err != nil {
		return fmt.Errorf("identity %q: %w", path, err)
	}
	if !force {
		_, err := os.Lstat(path)
		switch {
		case err == nil:
			return fmt.Errorf("identity %q exists: pass --force to replace it (its key is then lost)", path)
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("identity %q: %w", path, err)
		}
	}
	if err := WriteFileAtomic(path, data, 0o600); err != nil {
		return fmt.Errorf("identity %q: %w", path, err)
	}
	return nil
}

// LoadPersonal reads the identity file at path (see ParsePersonalPEM).
func LoadPersonal(path string) (*Personal, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	p, err := ParsePersonalPEM(data)
	if err != nil {
		return nil, fmt.Errorf("identity %q: %w", path, err)
	}
	return p, nil
}

// DefaultIdentityPath is where a person's identity lives:
// $XDG_CONFIG_HOME/skiff/identity, else $HOME/.config/skiff/identity.
func DefaultIdentityPath() (string, error) {
	// The XDG spec has relative values ignored.
	if dir := os.Getenv("XDG_CONFIG_HOME"); filepath.IsAbs(dir) {
		return filepath.Join(dir, "skiff", "identity"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("default identity path: no $XDG_CONFIG_HOME, and %w", err)
	}
	return filepath.Join(home, ".config", "skiff", "identity"), nil
}
