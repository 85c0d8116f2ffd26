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

// withTokenGuessLimit refuses bearer requests from an address that failed
// too often (429 with Retry-After), and counts each of its 401s as a
// failure. Requests without a bearer token pass untouched.
func withTokenGuessLimit(next http.Handler, g *tokenGuesses) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := bearerToken(r); !ok {
			next.ServeHTTP(w, r)
			return
		}
		ip, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			ip = r.RemoteAddr
		}
		l := g.limiter(ip)
		now := g.now()
		if l.TokensAt(now) < 1 {
			wait := time.Duration(math.Ceil((1 - l.TokensAt(now)) * guessEvery.Seconds() * float64(time.Second)))
			secs := int(math.Ceil(wait.Seconds()))
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			http.Error(w, fmt.Sprintf("too many failed join token attempts from %s: retry in %d s", ip, secs), http.StatusTooManyRequests)
			return
		}
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.status == http.StatusUnauthorized {
			l.AllowN(now, 1)
			klog.InfoS("failed join token attempt", "source", ip, "path", r.URL.Path)
		}
	})
}

// statusWriter records the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// CloseNotify is the underlying writer's, as the library's filters want.
func (s *statusWriter) CloseNotify() <-chan bool {
	//nolint:staticcheck // the library's response writer wrappers want it
	if cn, ok := s.ResponseWriter.(http.CloseNotifier); ok {
		return cn.CloseNotify()
	}
	return nil
}
