package image

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"path"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// Keyring holds registry credentials as docker config files hold them
// (`kubectl create secret docker-registry` writes one), each under a key
// that names a registry: host[:port], optionally with a scheme, a
// repository prefix and "*" labels ("https://index.docker.io/v1/",
// "ghcr.io/org", "*.example.com"), matched as the kubelet matches them.
// The zero value is empty. A Keyring never prints its credentials; errors
// about it name registries, never what they hold.
type Keyring struct {
	entries []keyringEntry
}

type keyringEntry struct {
	// host is the key's host[:port], lower case, the docker.io aliases
	// as name.DefaultRegistry; a label may be a path.Match pattern.
	host string
	// repo is the repository prefix, "" for every repository.
	repo string
	auth authn.AuthConfig
}

// dockerAuth is one registry's entry of a docker config file.
type dockerAuth struct {
	Auth          string `json:"auth"`
	Username      string `json:"username"`
	Password      string `json:"password"`
	IdentityToken string `json:"identitytoken"`
	RegistryToken string `json:"registrytoken"`
}

// AddDockerConfigJSON adds the credentials of a .dockerconfigjson (a
// kubernetes.io/dockerconfigjson Secret's): {"auths": {"registry":
// {"auth": base64("user:password")}}}, or "username" and "password" in
// place of "auth".
func (k *Keyring) AddDockerConfigJSON(data []byte) error {
	var cfg struct {
		Auths map[string]dockerAuth `json:"auths"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return configError(err)
	}
	return k.add(cfg.Auths)
}

// AddDockercfg adds the credentials of a legacy .dockercfg (a
// kubernetes.io/dockercfg Secret's): the "auths" object alone.
func (k *Keyring) AddDockercfg(data []byte) error {
	var auths map[string]dockerAuth
	if err := json.Unmarshal(data, &auths); err != nil {
		return configError(err)
	}
	return k.add(auths)
}

// configError describes a JSON error without quoting the input, which
// holds credentials.
func configError(err error) error {
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		return fmt.Errorf("not a docker config: %s is not a %s", cmp.Or(typ.Field, "the document"), typ.Type)
	}
	return errors.New("not a docker config: invalid JSON")
}

// add adds auths in the order of their keys, so that equal keys of one
// file always rank the same.
func (k *Keyring) add(auths map[string]dockerAuth) error {
	for _, key := range slices.Sorted(maps.Keys(auths)) {
		a := auths[key]
		cfg := authn.AuthConfig{Username: a.Username, Password: a.Password, IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken}
		if a.Auth != "" {
			user, pass, err := decodeAuth(a.Auth)
			if err != nil {
				return fmt.Errorf("registry %q: %w", key, err)
			}
			cfg.Username, cfg.Password = user, pass
		}
		host, repo := parseKey(key)
		if host == "" {
			return fmt.Errorf("registry %q: no host", key)
		}
		k.entries = append(k.entries, keyringEntry{host: host, repo: repo, auth: cfg})
	}
	return nil
}

func decodeAuth(auth string) (user, pass string, err error) {
	b, err := base64.StdEncoding.DecodeString(auth)
	if err != nil {
		return "", "", errors.New(`"auth" is not base64`)
	}
	user, pass, ok := strings.Cut(string(b), ":")
	if !ok {
		return "", "", errors.New(`"auth" is not base64 of "user:password"`)
	}
	return user, pass, nil
}

// dockerHub are the names the docker.io registry goes by in config keys.
var dockerHub = map[string]bool{"docker.io": true, "index.docker.io": true, "registry-1.docker.io": true}

// registryHost is host in lower case, the docker.io aliases as
// name.DefaultRegistry.
func registryHost(host string) string {
	host = strings.ToLower(host)
	if dockerHub[host] {
		return name.DefaultRegistry
	}
	return host
}

// parseKey splits a config key into its host and repository prefix. As
// the docker CLI and the kubelet do, it drops the scheme and takes a
// leading /v1/ or /v2/ for the registry itself.
func parseKey(key string) (host, repo string) {
	key = strings.TrimPrefix(strings.TrimPrefix(key, "https://"), "http://")
	host, repo, _ = strings.Cut(key, "/")
	host = registryHost(host)
	repo = strings.Trim(repo, "/")
	for _, api := range []string{"v1", "v2"} {
		if repo == api {
			repo = ""
		} else if rest, ok := strings.CutPrefix(repo, api+"/"); ok {
			repo = rest
		}
	}
	return host, repo
}

// lookup returns the credentials for ref's registry, most specific key
// first (the longest repository prefix, then an exact host before a
// pattern); nil when none matches.
func (k *Keyring) lookup(ref name.Reference) []authn.Authenticator {
	if k == nil {
		return nil
	}
	host, repo := registryHost(ref.Context().RegistryStr()), ref.Context().RepositoryStr()
	var match []keyringEntry
	for _, e := range k.entries {
		if hostMatches(e.host, host) && repoMatches(e.repo, repo) {
			match = append(match, e)
		}
	}
	slices.SortStableFunc(match, func(a, b keyringEntry) int {
		if c := cmp.Compare(len(b.repo), len(a.repo)); c != 0 {
			return c
		}
		return cmp.Compare(strings.Count(a.host, "*"), strings.Count(b.host, "*"))
	})
	var out []authn.Authenticator
	var seen []authn.AuthConfig
	for _, e := range match {
		if !slices.Contains(seen, e.auth) {
			seen = append(seen, e.auth)
			out = append(out, authn.FromConfig(e.auth))
		}
	}
	return out
}

// hostMatches reports whether host[:port] matches pattern: the same port
// and as many labels, each matching as path.Match does.
func hostMatches(pattern, host string) bool {
	pHost, pPort := splitPort(pattern)
	hHost, hPort := splitPort(host)
	if pPort != hPort {
		return false
	}
	pLabels, hLabels := strings.Split(pHost, "."), strings.Split(hHost, ".")
	if len(pLabels) != len(hLabels) {
		return false
	}
	for i := range pLabels {
		if ok, err := path.Match(pLabels[i], hLabels[i]); err != nil || !ok {
			return false
		}
	}
	return true
}

func splitPort(hostport string) (host, port string) {
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		return h, p
	}
	return hostport, ""
}

// repoMatches reports whether repo is prefix or below it.
func repoMatches(prefix, repo string) bool {
	return prefix == "" || repo == prefix || strings.HasPrefix(repo, prefix+"/")
}

// Len is the number of credentials in the keyring.
func (k *Keyring) Len() int {
	if k == nil {
		return 0
	}
	return len(k.entries)
}

// String describes the keyring without its credentials.
func (k *Keyring) String() string {
	return fmt.Sprintf("image.Keyring(%d credentials)", k.Len())
}

// GoString is String: %#v prints no credentials either.
func (k *Keyring) GoString() string { return k.String() }
