package failover

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// Servers is a list of API server URLs and the current one, which
// requests go to. It is safe for concurrent use.
type Servers struct {
	mu      sync.Mutex
	urls    []string // normalized, never empty
	current int
	// moved is signalled (without blocking) when the current server
	// changes because it failed: the Refresher then asks for the list
	// soon, not at its next tick.
	moved chan struct{}
}

// New returns the servers, the first one current. Each must be an
// https:// URL (see Normalize); duplicates count once.
func New(servers []string) (*Servers, error) {
	urls, err := normalizeAll(servers)
	if err != nil {
		return nil, err
	}
	if len(urls) == 0 {
		return nil, errors.New("no API server URL")
	}
	return &Servers{urls: urls, moved: make(chan struct{}, 1)}, nil
}

// Current is the server requests go to now.
func (s *Servers) Current() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.urls[s.current]
}

// List returns every server, in order.
func (s *Servers) List() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.urls)
}

// Failed says that server could not serve a request: if it is still the
// current one (no other request has moved on already), the next server
// in the list becomes current.
func (s *Servers) Failed(server string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.urls) < 2 || s.urls[s.current] != server {
		return
	}
	s.current = (s.current + 1) % len(s.urls)
	select {
	case s.moved <- struct{}{}:
	default:
	}
}

// Replace makes servers the list and reports whether it changed. The
// current server stays current if it is listed; else the first is. An
// empty or invalid list changes nothing: a client never loses every
// server it knows.
func (s *Servers) Replace(servers []string) (bool, error) {
	urls, err := normalizeAll(servers)
	if err != nil {
		return false, err
	}
	if len(urls) == 0 {
		return false, errors.New("an empty list of API servers")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.Equal(urls, s.urls) {
		return false, nil
	}
	s.current = max(slices.Index(urls, s.urls[s.current]), 0)
	s.urls = urls
	return true, nil
}

// fromCurrent is the list starting at the current server: the order a
// request tries them in.
func (s *Servers) fromCurrent() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append(slices.Clone(s.urls[s.current:]), s.urls[:s.current]...)
}

// Normalize checks that server is an https:// URL naming a host and no
// path, and returns it as https://host[:port].
func Normalize(server string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(server))
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%q: want an https://host[:port] URL", server)
	}
	return "https://" + u.Host, nil
}

// Split reads a comma-separated list of servers (a flag's value); blanks
// around each are dropped, and empty items.
func Split(list string) []string {
	var out []string
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// normalizeAll normalizes every server, dropping duplicates.
func normalizeAll(servers []string) ([]string, error) {
	out := make([]string, 0, len(servers))
	for _, s := range servers {
		u, err := Normalize(s)
		if err != nil {
			return nil, fmt.Errorf("API server %w", err)
		}
		if !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out, nil
}
