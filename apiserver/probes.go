package apiserver

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// isProbe reports a GET or HEAD of a health endpoint (publicPaths, or
// one of their checks such as /readyz/etcd).
func isProbe(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && isPublicPath(r.URL.Path)
}

// withPublicProbes serves health probes straight from direct (the
// server's own handlers), past authentication and the in-flight limits:
// probes are public whatever headers or certificate they carry (a junk
// Authorization header made /readyz answer 401), and a flood of other
// requests, anonymous or not, never makes them answer 429.
func withPublicProbes(chain, direct http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isProbe(r) {
			direct.ServeHTTP(w, r)
			return
		}
		chain.ServeHTTP(w, r)
	})
}

// healthTTL is how long one /health answer is served again: a flood of
// probes costs one etcd read a second, not one each.
const healthTTL = time.Second

// healthCache computes the /health document at most once per healthTTL;
// callers that come while it is computed wait for that result.
type healthCache struct {
	compute func(ctx context.Context) Health
	now     func() time.Time

	mu   sync.Mutex
	at   time.Time
	last Health
}

func (c *healthCache) get() Health {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && c.now().Sub(c.at) < healthTTL {
		return c.last
	}
	// Not the caller's context: a probe that gives up must not leave a
	// failed answer for the others.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c.last, c.at = c.compute(ctx), c.now()
	return c.last
}
