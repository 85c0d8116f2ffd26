package image

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
)

func basicAuth(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

// users returns who each credential for ref logs in as, in order.
func users(t *testing.T, k *Keyring, ref string) []string {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatalf("parse %q: %v", ref, err)
	}
	var out []string
	for _, a := range k.lookup(r) {
		cfg, err := a.Authorization()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, cfg.Username)
	}
	return out
}

func TestKeyringParses(t *testing.T) {
	var k Keyring
	err := k.AddDockerConfigJSON([]byte(fmt.Sprintf(`{"auths": {
		"a.example": {"auth": %q},
		"b.example": {"username": "bob", "password": "pw-b"},
		"c.example": {"auth": %q, "username": "ignored"},
		"d.example": {"identitytoken": "refresh"}
	}}`, basicAuth("alice", "pw-a"), basicAuth("carol", "pw:with:colons"))))
	if err != nil {
		t.Fatal(err)
	}
	if err := k.AddDockercfg([]byte(fmt.Sprintf(`{"e.example": {"auth": %q}}`, basicAuth("eve", "pw-e")))); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ ref, user, pass, token string }{
		{"a.example/app", "alice", "pw-a", ""},
		{"b.example/app", "bob", "pw-b", ""},
		{"c.example/app", "carol", "pw:with:colons", ""},
		{"d.example/app", "", "", "refresh"},
		{"e.example/app", "eve", "pw-e", ""},
	} {
		r, _ := name.ParseReference(tc.ref)
		creds := k.lookup(r)
		if len(creds) != 1 {
			t.Fatalf("%s: %d credentials, want 1", tc.ref, len(creds))
		}
		cfg, _ := creds[0].Authorization()
		if cfg.Username != tc.user || cfg.Password != tc.pass || cfg.IdentityToken != tc.token {
			t.Errorf("%s: user %q password %q token %q, want %q %q %q", tc.ref, cfg.Username, cfg.Password, cfg.IdentityToken, tc.user, tc.pass, tc.token)
		}
	}
	if k.Len() != 5 {
		t.Errorf("Len = %d, want 5", k.Len())
	}
	for _, s := range []string{k.String(), fmt.Sprintf("%v %+v %#v %s", &k, &k, &k, &k)} {
		for _, secret := range []string{"pw-a", "pw-b", "refresh", "alice"} {
			if strings.Contains(s, secret) {
				t.Errorf("printed keyring %q shows %q", s, secret)
			}
		}
	}
}

func TestKeyringErrorsHideCredentials(t *testing.T) {
	const secret = "s3cret-value"
	for _, tc := range []struct {
		name, config, want string
	}{
		{"not JSON", `{"auths": {"r.example": {"auth": "` + secret + `"}`, "invalid JSON"},
		{"not JSON at the secret", `{"auths": {"r.example": {"password": ` + secret + `}}}`, "invalid JSON"},
		{"auths of the wrong type", `{"auths": ["` + secret + `"]}`, "auths"},
		{"auth not base64", `{"auths": {"r.example": {"auth": "` + secret + `!"}}}`, `registry "r.example": "auth" is not base64`},
		{"auth without a colon", `{"auths": {"r.example": {"auth": "` + base64.StdEncoding.EncodeToString([]byte(secret)) + `"}}}`, `registry "r.example"`},
		{"no host", `{"auths": {"https://": {"username": "u", "password": "` + secret + `"}}}`, "no host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var k Keyring
			err := k.AddDockerConfigJSON([]byte(tc.config))
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), secret) {
				t.Errorf("error %q: want it to say %q and not show the secret", err, tc.want)
			}
		})
	}
}

// TestKeyringMatches: registry keys match as the kubelet matches them:
// the docker.io aliases, ports, "*" labels, repository prefixes; the most
// specific first.
func TestKeyringMatches(t *testing.T) {
	for _, tc := range []struct {
		name string
		keys []string // each key's user is its index
		ref  string
		want []string
	}{
		{"docker CLI's key for Docker Hub, official image", []string{"https://index.docker.io/v1/"}, "busybox", []string{"0"}},
		{"docker CLI's key for Docker Hub, full name", []string{"https://index.docker.io/v1/"}, "docker.io/library/busybox:1.36", []string{"0"}},
		{"docker.io key", []string{"docker.io"}, "index.docker.io/me/app", []string{"0"}},
		{"registry-1.docker.io key", []string{"registry-1.docker.io"}, "me/app", []string{"0"}},
		{"Docker Hub key, other registry", []string{"https://index.docker.io/v1/"}, "ghcr.io/me/app", nil},
		{"host", []string{"ghcr.io"}, "ghcr.io/me/app:v1", []string{"0"}},
		{"host with scheme and /v2/", []string{"http://reg.example:5000/v2/"}, "reg.example:5000/app", []string{"0"}},
		{"host is case-insensitive", []string{"GHCR.io"}, "ghcr.io/me/app", []string{"0"}},
		{"port must match", []string{"localhost:5000"}, "localhost:5001/app", nil},
		{"no port in the key, port in the image", []string{"localhost"}, "localhost:5000/app", nil},
		{"host must match", []string{"ghcr.io"}, "quay.io/me/app", nil},
		{"pattern label", []string{"*.example.com"}, "r.example.com/app", []string{"0"}},
		{"pattern needs as many labels", []string{"*.example.com"}, "a.r.example.com/app", nil},
		{"pattern needs its label", []string{"*.example.com"}, "example.com/app", nil},
		{"repository prefix", []string{"quay.io/org"}, "quay.io/org/team/app", []string{"0"}},
		{"repository prefix is whole segments", []string{"quay.io/org"}, "quay.io/orgx/app", nil},
		{"other repository", []string{"quay.io/org"}, "quay.io/other/app", nil},
		{"longest prefix first", []string{"quay.io", "quay.io/org", "quay.io/org/app"}, "quay.io/org/app:v1", []string{"2", "1", "0"}},
		{"exact host before a pattern", []string{"*.example.com", "r.example.com"}, "r.example.com/app", []string{"1", "0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var k Keyring
			for i, key := range tc.keys {
				cfg := fmt.Sprintf(`{"auths": {%q: {"username": "%d", "password": "pw"}}}`, key, i)
				if err := k.AddDockerConfigJSON([]byte(cfg)); err != nil {
					t.Fatal(err)
				}
			}
			if got := users(t, &k, tc.ref); !slices.Equal(got, tc.want) {
				t.Errorf("credentials for %q: %q, want %q", tc.ref, got, tc.want)
			}
		})
	}
}

func TestKeyringDropsDuplicates(t *testing.T) {
	var k Keyring
	cfg := []byte(`{"auths": {"ghcr.io": {"username": "u", "password": "p"}, "https://ghcr.io": {"username": "u", "password": "p"}}}`)
	for range 2 {
		if err := k.AddDockerConfigJSON(cfg); err != nil {
			t.Fatal(err)
		}
	}
	if got := users(t, &k, "ghcr.io/app"); !slices.Equal(got, []string{"u"}) {
		t.Errorf("credentials %q, want one", got)
	}
	if got := users(t, nil, "ghcr.io/app"); got != nil {
		t.Errorf("nil keyring: %q", got)
	}
}
