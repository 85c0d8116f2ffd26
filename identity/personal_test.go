package identity

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPersonalIDIsTheKeyUserNameSuffix(t *testing.T) {
	id := newTestIdentity(t)
	if got, want := KeyUserName(id.Public()), KeyUserPrefix+ID(id.Public()); got != want {
		t.Fatalf("KeyUserName %q, want %q", got, want)
	}
	if pub, ok := ParseKeyUserName(KeyUserPrefix + ID(id.Public())); !ok || !pub.Equal(id.Public()) {
		t.Fatal("the user name made of ID does not parse back to the key")
	}
	if strings.ContainsAny(ID(id.Public()), "+/=") {
		t.Fatalf("ID %q is not unpadded base64url", ID(id.Public()))
	}
}

func TestPersonalSaveLoad(t *testing.T) {
	created := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name        string
		holder      string
		email       string
		wantDisplay string
	}{
		{name: "name and email round-trip", holder: "Ada Lovelace", email: "ada@example.org", wantDisplay: "Ada Lovelace"},
		{name: "a name outside ASCII round-trips", holder: "Zoë Ångström", email: "", wantDisplay: "Zoë Ångström"},
		{name: "without a name the display name is the user name", wantDisplay: KeyUserPrefix},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewPersonal(tc.holder, tc.email, created)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "config", "skiff", "identity")
			if err := SavePersonal(path, p, false); err != nil {
				t.Fatal(err)
			}
			got, err := LoadPersonal(path)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Private.Equal(p.Private) || got.Name != tc.holder || got.Email != tc.email || !got.Created.Equal(created) {
				t.Fatalf("loaded %q %q %v, want %q %q %v and the same key", got.Name, got.Email, got.Created, tc.holder, tc.email, created)
			}
			if !strings.HasPrefix(got.DisplayName(), tc.wantDisplay) {
				t.Fatalf("display name %q, want %q", got.DisplayName(), tc.wantDisplay)
			}
			for file, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
				if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != want {
					t.Errorf("%s: mode %v (%v), want %v", file, fi.Mode().Perm(), err, want)
				}
			}
		})
	}
}

func TestSavePersonalRefusesToOverwrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identity")
	first, _ := NewPersonal("first", "", time.Now())
	second, _ := NewPersonal("second", "", time.Now())
	if err := SavePersonal(path, first, false); err != nil {
		t.Fatal(err)
	}
	err := SavePersonal(path, second, false)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("overwrite without force: %v; want a refusal naming the path and --force", err)
	}
	if got, _ := LoadPersonal(path); got.Name != "first" {
		t.Fatalf("the refused save replaced the file (name %q)", got.Name)
	}
	if err := SavePersonal(path, second, true); err != nil {
		t.Fatalf("overwrite with force: %v", err)
	}
	if got, _ := LoadPersonal(path); got.Name != "second" {
		t.Fatalf("after a forced save the name is %q, want second", got.Name)
	}
}

func TestPersonalRefusesHeaderBreakingValues(t *testing.T) {
	for _, name := range []string{"Eve\nProc-Type: 4,ENCRYPTED", "tab\there"} {
		p, _ := NewPersonal("", "", time.Now())
		p.Name = name
		if _, err := p.PEM(); err == nil {
			t.Errorf("name %q was written into a PEM header", name)
		}
	}
}

func TestLoadPersonalReadsAPlainKey(t *testing.T) {
	id := newTestIdentity(t)
	keyPEM, err := id.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "admin.key")
	if err := os.WriteFile(path, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := LoadPersonal(path)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Private.Equal(id.Private) || p.Name != "" || p.Email != "" || !p.Created.IsZero() {
		t.Fatalf("plain key loaded as %q %q %v", p.Name, p.Email, p.Created)
	}
}

func TestDefaultIdentityPath(t *testing.T) {
	cases := []struct{ name, xdg, home, want string }{
		{name: "XDG_CONFIG_HOME wins", xdg: "/xdg", home: "/home/ada", want: "/xdg/skiff/identity"},
		{name: "without XDG_CONFIG_HOME, under HOME", home: "/home/ada", want: "/home/ada/.config/skiff/identity"},
		{name: "a relative XDG_CONFIG_HOME is ignored", xdg: "rel", home: "/home/ada", want: "/home/ada/.config/skiff/identity"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("XDG_CONFIG_HOME", tc.xdg)
			t.Setenv("HOME", tc.home)
			if got, err := DefaultIdentityPath(); err != nil || got != tc.want {
				t.Fatalf("%q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
