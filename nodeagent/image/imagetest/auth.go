package imagetest

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// unauthorized answers as the distribution registry does without valid
// credentials: 401, the challenge, and an UNAUTHORIZED error.
func unauthorized(w http.ResponseWriter, challenge string) {
	w.Header().Set("WWW-Authenticate", challenge)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
}

// BasicAuth wraps a registry handler (see RegistryServer) so that every
// request needs user and password by HTTP basic authentication, as a
// registry with htpasswd authentication does.
func BasicAuth(user, password string) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != user || p != password {
				unauthorized(w, `Basic realm="imagetest"`)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
}

// TokenAuth wraps a registry handler (see RegistryServer) so that every
// request needs a bearer token, which the server hands out at /token to
// user and password, as Docker Hub and most public registries do.
func TokenAuth(user, password string) func(http.Handler) http.Handler {
	token := rand.Text()
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/token" {
				if u, p, ok := r.BasicAuth(); !ok || u != user || p != password {
					unauthorized(w, `Basic realm="imagetest token"`)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				json.NewEncoder(w).Encode(map[string]string{"token": token})
				return
			}
			if got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); !ok || got != token {
				unauthorized(w, fmt.Sprintf(`Bearer realm="http://%s/token",service="imagetest"`, r.Host))
				return
			}
			h.ServeHTTP(w, r)
		})
	}
}
