package image

import (
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"skiff.dev/skiff/nodeagent/image/imagebuild"
	"skiff.dev/skiff/nodeagent/image/imagetest"
)

// manifestRequests counts a registry's manifest requests by method.
type manifestRequests struct {
	mu sync.Mutex
	n  map[string]int
}

func (m *manifestRequests) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/manifests/") {
			m.mu.Lock()
			m.n[r.Method]++
			m.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	})
}

// take returns the counts since the last take.
func (m *manifestRequests) take() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.n
	m.n = map[string]int{}
	return n
}

func tinyImage(t *testing.T, cmd string) v1.Image {
	return imagetest.Image(t, v1.Config{Cmd: []string{cmd}}, imagetest.Layer(t, imagetest.Entry{Name: cmd, Body: cmd}))
}

func digestOf(t *testing.T, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// TestEnsureAlwaysFollowsTheTag: Always asks the registry at every call,
// with a HEAD only while the tag names the image the store holds, and
// pulls the tag's new image once it is pushed; an unreachable registry
// fails Always but not IfNotPresent or Never.
func TestEnsureAlwaysFollowsTheTag(t *testing.T) {
	requireRoot(t)
	reqs := &manifestRequests{n: map[string]int{}}
	srv := imagetest.RegistryServer(t, reqs.wrap)
	host := imagetest.Host(srv)
	one, two := tinyImage(t, "one"), tinyImage(t, "two")
	ref := imagetest.Push(t, host, "app:latest", one)
	s := newStore(t, t.TempDir(), host)
	always := PullOptions{Policy: Always}
	ensure := func(opts PullOptions, wantCmd string, wantPull bool) {
		t.Helper()
		reqs.take()
		img, err := s.Ensure(t.Context(), ref, opts)
		if err != nil {
			t.Fatal(err)
		}
		if img.Config.Cmd[0] != wantCmd || (img.PullDuration > 0) != wantPull {
			t.Errorf("Ensure = cmd %q, pull duration %v; want %q, pulled %t", img.Config.Cmd, img.PullDuration, wantCmd, wantPull)
		}
	}

	ensure(always, "one", true)
	ensure(always, "one", false)
	if got := reqs.take(); got[http.MethodHead] != 1 || got[http.MethodGet] != 0 {
		t.Errorf("Always with the tag's image stored: manifest requests %v, want one HEAD", got)
	}
	imagetest.Push(t, host, "app:latest", two)
	ensure(PullOptions{}, "one", false) // IfNotPresent does not ask
	if got := reqs.take(); len(got) != 0 {
		t.Errorf("IfNotPresent with the image stored: manifest requests %v", got)
	}
	ensure(always, "two", true)
	img, err := s.Ensure(t.Context(), ref, always)
	if err != nil {
		t.Fatal(err)
	}
	if want := host + "/app@" + digestOf(t, two); img.ID != want {
		t.Errorf("ID = %q, want %q", img.ID, want)
	}

	srv.Close()
	_, err = s.Ensure(t.Context(), ref, always)
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("Always with the registry gone: %v, want the pull to fail", err)
	}
	for _, p := range []PullPolicy{IfNotPresent, Never} {
		if img, err := s.Ensure(t.Context(), ref, PullOptions{Policy: p}); err != nil || img.Config.Cmd[0] != "two" {
			t.Errorf("policy %d with the registry gone: %v, %v; want the stored image", p, img, err)
		}
	}
}

// TestEnsureNeverAndReserved: Never and skiff.local images never reach a
// registry; a missing one fails with its own error.
func TestEnsureNeverAndReserved(t *testing.T) {
	requireRoot(t)
	reqs := &manifestRequests{n: map[string]int{}}
	host := imagetest.Host(imagetest.RegistryServer(t, reqs.wrap))
	ref := imagetest.Push(t, host, "app:v1", tinyImage(t, "one"))
	dir := t.TempDir()
	const imported = ReservedRegistry + "/busybox:latest"
	if err := imagebuild.WriteTarball(filepath.Join(dir, "busybox.tar"), imported, tinyImage(t, "imported")); err != nil {
		t.Fatal(err)
	}
	s := newStore(t, t.TempDir(), host)
	if _, err := s.Import(t.Context(), dir); err != nil {
		t.Fatal(err)
	}
	reqs.take()

	for _, tc := range []struct {
		ref    string
		policy PullPolicy
		want   error
	}{
		{ref, Never, ErrNeverPull},
		{ReservedRegistry + "/busybox:missing", Always, ErrNotImported},
		{ReservedRegistry + "/busybox:missing", IfNotPresent, ErrNotImported},
		{ReservedRegistry + "/busybox:missing", Never, ErrNeverPull},
		{imported, Always, nil},
		{imported, Never, nil},
		{"skiff.local/busybox", Always, nil},
	} {
		img, err := s.Ensure(t.Context(), tc.ref, PullOptions{Policy: tc.policy})
		if !errors.Is(err, tc.want) {
			t.Errorf("Ensure %q, policy %d: %v, want %v", tc.ref, tc.policy, err, tc.want)
			continue
		}
		if err != nil && !strings.Contains(err.Error(), tc.ref) {
			t.Errorf("error %q does not name the image", err)
		}
		if err == nil && img.Config.Cmd[0] != "imported" {
			t.Errorf("Ensure %q = %+v, want the imported image", tc.ref, img)
		}
	}
	if got := reqs.take(); len(got) != 0 {
		t.Errorf("manifest requests %v, want none", got)
	}
}

// TestEnsureWithCredentials: a pull from a registry that wants a login,
// by basic authentication or by the token flow, fails with the registry's
// 401 without credentials or with wrong ones, and works with the
// keyring's; several matching credentials are tried in turn.
func TestEnsureWithCredentials(t *testing.T) {
	requireRoot(t)
	const user, password = "puller", "right-password"
	for _, tc := range []struct {
		name string
		wrap func(http.Handler) http.Handler
	}{
		{"basic", imagetest.BasicAuth(user, password)},
		{"token", imagetest.TokenAuth(user, password)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host := imagetest.Host(imagetest.RegistryServer(t, tc.wrap))
			ref := imagetest.Push(t, host, "private/app", tinyImage(t, "one"),
				remote.WithAuth(&authn.Basic{Username: user, Password: password}))
			keyring := func(auths string) *Keyring {
				k := &Keyring{}
				if err := k.AddDockerConfigJSON([]byte(`{"auths": {` + auths + `}}`)); err != nil {
					t.Fatal(err)
				}
				return k
			}
			wrong := keyring(fmt.Sprintf(`%q: {"username": %q, "password": "wrong"}`, host, user))
			for _, opts := range []PullOptions{{}, {Keyring: wrong}, {Keyring: keyring(`"other.example": {"username": "u", "password": "p"}`)}} {
				_, err := newStore(t, t.TempDir(), host).Ensure(t.Context(), ref, opts)
				var terr *transport.Error
				if !errors.As(err, &terr) || terr.StatusCode != http.StatusUnauthorized || !strings.Contains(err.Error(), "UNAUTHORIZED") {
					t.Errorf("Ensure with %v: %v, want the registry's 401", opts.Keyring, err)
				}
				if err != nil && strings.Contains(err.Error(), "wrong") {
					t.Errorf("error %q shows the password", err)
				}
			}

			// The more specific (wrong) credentials first, then the host's.
			both := keyring(fmt.Sprintf(`%q: {"username": %q, "password": "wrong"}, %q: {"auth": %q}`,
				host+"/private", user, "http://"+host+"/v2/", basicAuth(user, password)))
			s := newStore(t, t.TempDir(), host)
			for _, policy := range []PullPolicy{IfNotPresent, Always} {
				if _, err := s.Ensure(t.Context(), ref, PullOptions{Policy: policy, Keyring: both}); err != nil {
					t.Errorf("policy %d with the right credentials: %v", policy, err)
				}
			}
			if _, err := s.Ensure(t.Context(), ref, PullOptions{Policy: Always}); err == nil {
				t.Error("Always without credentials, the image stored: no error, want the registry's 401")
			}
		})
	}
}
