package apiserver

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/klog/v2"
	"k8s.io/utils/lru"
)

// Failed join token guesses: each source address may fail guessFailures
// times at once, then once per guessEvery; beyond that its bearer requests
// get 429 before the token is even looked at.
const (
	guessFailures = 10
	guessEvery    = 6 * time.Second
	// guessSources bounds the addresses remembered (the oldest go first).
	guessSources = 4096
)

// tokenGuesses limits failed bearer-token (join token) attempts per source
// address.
type tokenGuesses struct {
	mu      sync.Mutex
	sources *lru.Cache // ip -> *rate.Limiter
	now     func() time.Time
}

func newTokenGuesses() *tokenGuesses {
	return &tokenGuesses{sources: lru.New(guessSources), now: time.Now}
}

func (g *tokenGuesses) limiter(ip string) *rate.Limiter {
	g.mu.Lock()
	defer g.mu.Unlock()
	if l, ok := g.sources.Get(ip); ok {
		return l.(*rate.Limiter)
	}
	l := rate.NewLimiter(rate.Every(guessEvery), guessFailures)
	g.sources.Add(ip, l)
	return l
}

// failed counts a wrong join token from req's source address. The
// authenticator calls it: it is where a token is judged wrong. A nil g
// counts nothing.
func (g *tokenGuesses) failed(req *http.Request) {
	if g == nil {
		return
	}
	ip := sourceIP(req)
	g.limiter(ip).AllowN(g.now(), 1)
	klog.InfoS("failed join token attempt", "source", ip, "path", req.URL.Path)
}

func sourceIP(req *http.Request) string {
	ip, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		return req.RemoteAddr
	}
	return ip
}

// withTokenGuessLimit refuses bearer requests from an address that failed
// too often (429 with Retry-After) before the token is looked at.
// Requests without a bearer token pass untouched.
func withTokenGuessLimit(next http.Handler, g *tokenGuesses) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := bearerToken(r); !ok {
			next.ServeHTTP(w, r)
			return
		}
		ip := sourceIP(r)
		if tokens := g.limiter(ip).TokensAt(g.now()); tokens < 1 {
			secs := int(math.Ceil((1 - tokens) * guessEvery.Seconds()))
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			http.Error(w, fmt.Sprintf("too many failed join token attempts from %s: retry in %d s", ip, secs), http.StatusTooManyRequests)
			return
		}
		next.ServeHTTP(w, r)
	})
}
