package gossip

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// APIPath is where the API server serves Handler: nodes may GET it,
// admins may also POST APIPath/rotate-key.
const APIPath = "/gossip"

// Info is what the API server tells a joining member: the keys (the
// primary first) and the control plane's gossip addresses, the seeds that
// need no configuration.
type Info struct {
	Keys
	// Seeds are the control plane members' addresses, ip:port.
	Seeds []string `json:"seeds"`
}

// RotateResult answers a rotation.
type RotateResult struct {
	// Primary is the fingerprint of the key now in use everywhere.
	Primary string `json:"primary"`
	// Members is how many other members confirmed each step.
	Members int `json:"members"`
}

// Handler serves m's keys and address to joining members (GET path) and
// rotates the key cluster-wide (POST path/rotate-key). The API server
// puts it behind its authentication and authorization: nodes may GET,
// admins may POST.
func Handler(path string, m *Membership) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == path && r.Method == http.MethodGet:
			writeJSON(w, http.StatusOK, Info{Keys: m.keyring.Keys(), Seeds: []string{m.Addr()}})
		case r.URL.Path == path+"/rotate-key" && r.Method == http.MethodPost:
			key, err := NewKey()
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
			defer cancel()
			if err := m.Rotate(ctx, key, 20*time.Second); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			writeJSON(w, http.StatusOK, RotateResult{Primary: Fingerprint(key), Members: m.AliveMembers()})
		default:
			http.Error(w, "GET "+path+" or POST "+path+"/rotate-key", http.StatusMethodNotAllowed)
		}
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// ErrNotServed is Fetch's error when the API server serves no gossip
// (its gossip is off).
var ErrNotServed = errors.New("the API server serves no gossip keys (its gossip is off)")

// Fetch asks the API server at base (its URL, through c, which
// authenticates as a node or an admin) for the keys and seeds.
func Fetch(ctx context.Context, c *http.Client, base, path string) (Info, error) {
	var info Info
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+path, nil)
	if err != nil {
		return info, err
	}
	if err := do(c, req, &info); err != nil {
		if errors.Is(err, errNotFound) {
			return info, ErrNotServed
		}
		return info, fmt.Errorf("gossip keys from %s: %w", base, err)
	}
	if _, err := info.decode(); err != nil {
		return info, fmt.Errorf("gossip keys from %s: %w", base, err)
	}
	return info, nil
}

// RequestRotation asks the API server at base to rotate the key.
func RequestRotation(ctx context.Context, c *http.Client, base, path string) (RotateResult, error) {
	var res RotateResult
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(base, "/")+path+"/rotate-key", nil)
	if err != nil {
		return res, err
	}
	if err := do(c, req, &res); err != nil {
		return res, fmt.Errorf("rotate the gossip key at %s: %w", base, err)
	}
	return res, nil
}

var errNotFound = errors.New("not found")

func do(c *http.Client, req *http.Request, into any) error {
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusNotFound {
		return errNotFound
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return json.Unmarshal(body, into)
}
