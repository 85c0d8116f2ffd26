package identity

import (
	"bytes"
	"container/heap"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// The headers of a signed request.
const (
	// HeaderPublicKey carries the signer's key, as EncodePublicKey.
	HeaderPublicKey = "X-Auth-PublicKey"
	// HeaderTimestamp carries the signing time, RFC 3339 in UTC with
	// nanoseconds (time.RFC3339Nano).
	HeaderTimestamp = "X-Auth-Timestamp"
	// HeaderSignature carries the Ed25519 signature in standard base64.
	HeaderSignature = "X-Auth-Signature"
)

// requestDomain starts every signed payload, so that a request signature
// can never be mistaken for a signature over anything else.
const requestDomain = "skiff-request-v1"

// Errors from RequestVerifier.Verify, for errors.Is.
var (
	// ErrNotSigned: the request carries none of the signing headers, so
	// another authenticator may take it.
	ErrNotSigned = errors.New("request is not signed")
	// ErrReplayed: the same signature was accepted before, within the
	// window in which its timestamp is valid.
	ErrReplayed = errors.New("signed request: signature already used (a replay)")
	// ErrReplayCacheFull: the verifier remembers as many live signatures
	// as it may, and refuses new ones rather than forget one that could
	// then be replayed.
	ErrReplayCacheFull = errors.New("signed request: too many signed requests within the allowed clock skew; retry later")
)

// signedPayload is the byte string a request signature covers: the domain,
// then each field as a 4-byte big-endian length and its bytes. Lengths make
// the encoding unambiguous: no two field lists share a payload.
func signedPayload(method, target, host, contentType, timestamp string, bodyHash [sha256.Size]byte) []byte {
	fields := [...]string{method, target, host, contentType, timestamp, string(bodyHash[:])}
	n := len(requestDomain)
	for _, f := range fields {
		n += 4 + len(f)
	}
	p := make([]byte, 0, n)
	p = append(p, requestDomain...)
	for _, f := range fields {
		p = binary.BigEndian.AppendUint32(p, uint32(len(f)))
		p = append(p, f...)
	}
	return p
}

// requestTarget is the path and query as they travel in the request line:
// what the Go client sends (URL.RequestURI) and the server parses back.
func requestTarget(u *url.URL) string {
	target := u.EscapedPath()
	if target == "" {
		target = "/"
	}
	if u.RawQuery != "" || u.ForceQuery {
		target += "?" + u.RawQuery
	}
	return target
}

// SignRequest signs req with the identity at now. It reads req.Body and
// replaces it (setting GetBody and ContentLength), so that req can still
// be sent, and sets the three signing headers.
func (id *Identity) SignRequest(req *http.Request, now time.Time) error {
	if req.URL == nil || req.URL.Opaque != "" {
		return errors.New("sign request: the URL needs a path (opaque URLs are not signed)")
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	host = withoutZone(host)
	for i := 0; i < len(host); i++ {
		if host[i] >= 0x80 {
			return fmt.Errorf("sign request: host %q: use its ASCII (punycode) form, which is what the client sends", host)
		}
	}
	if req.Header == nil {
		req.Header = http.Header{}
	}
	if len(req.Header.Values("Content-Type")) > 1 {
		return errors.New("sign request: more than one Content-Type header")
	}
	// The server trims a header value's surrounding blanks; sign what it sees.
	contentType := strings.Trim(req.Header.Get("Content-Type"), " \t")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	body, err := takeBody(req)
	if err != nil {
		return fmt.Errorf("sign request: %w", err)
	}
	timestamp := now.UTC().Format(time.RFC3339Nano)
	payload := signedPayload(req.Method, requestTarget(req.URL), host, contentType, timestamp, sha256.Sum256(body))
	req.Header.Set(HeaderPublicKey, id.PublicKeyString())
	req.Header.Set(HeaderTimestamp, timestamp)
	req.Header.Set(HeaderSignature, base64.StdEncoding.EncodeToString(ed25519.Sign(id.Private, payload)))
	return nil
}

// withoutZone drops an IPv6 zone from host ("[fe80::1%25en0]:443"), as the
// Go client does before it sends the Host header.
func withoutZone(host string) string {
	end := strings.LastIndex(host, "]")
	if !strings.HasPrefix(host, "[") || end < 0 {
		return host
	}
	if zone := strings.Index(host[:end], "%"); zone > 0 {
		return host[:zone] + host[end:]
	}
	return host
}

// takeBody reads and closes req.Body and puts back a copy that can be read
// again, and again through GetBody.
func takeBody(req *http.Request) ([]byte, error) {
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		var err error
		body, err = io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("read body: %w", err)
		}
	}
	req.ContentLength = int64(len(body))
	if len(body) == 0 {
		req.Body = http.NoBody
		req.GetBody = func() (io.ReadCloser, error) { return http.NoBody, nil }
		return nil, nil
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	return body, nil
}

// VerifierOptions configure a RequestVerifier. Zero fields take defaults.
type VerifierOptions struct {
	// Skew is how far a request's timestamp may be from the verifier's
	// clock, either way. Default 5 minutes.
	Skew time.Duration
	// MaxBody is the largest body the verifier reads, in bytes. Default
	// 3 MiB, the API server's own limit on a request.
	MaxBody int64
	// Now is the verifier's clock. Default time.Now.
	Now func() time.Time
	// MaxReplayEntries is how many accepted signatures the verifier keeps
	// (each until its timestamp leaves the skew window); when full it
	// refuses new signed requests. Default 1<<20 (about 80 MB when full).
	MaxReplayEntries int
	// MaxReplayEntriesPerKey is how many of those one key may hold, so
	// that no single key can fill the cache for everyone. Default a
	// sixteenth of MaxReplayEntries.
	MaxReplayEntriesPerKey int
	// KeyAllowed, when set, is asked about a key before the body is read
	// and the signature checked (so before anything is remembered); an
	// error refuses the request. The API server passes its trust lookup
	// here, so that a key nobody trusts can neither make it buffer bodies
	// nor fill the replay cache.
	KeyAllowed func(ed25519.PublicKey) error
}

// Defaults of VerifierOptions.
const (
	DefaultSignatureSkew    = 5 * time.Minute
	DefaultSignedBodyMax    = 3 << 20
	DefaultReplayMaxEntries = 1 << 20
)

// RequestVerifier checks signed requests and refuses replays. It is safe
// for concurrent use.
type RequestVerifier struct {
	opts   VerifierOptions
	replay replayCache
}

// NewRequestVerifier returns a verifier with opts, defaults filled in.
func NewRequestVerifier(opts VerifierOptions) *RequestVerifier {
	if opts.Skew <= 0 {
		opts.Skew = DefaultSignatureSkew
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultSignedBodyMax
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxReplayEntries <= 0 {
		opts.MaxReplayEntries = DefaultReplayMaxEntries
	}
	if opts.MaxReplayEntriesPerKey <= 0 {
		opts.MaxReplayEntriesPerKey = max(1, opts.MaxReplayEntries/16)
	}
	return &RequestVerifier{opts: opts, replay: replayCache{max: opts.MaxReplayEntries, perSigner: opts.MaxReplayEntriesPerKey}}
}

// Verify checks req's signature and returns the key that signed it. A
// request with none of the signing headers gets ErrNotSigned. Verify reads
// the body and puts back a copy, so the handler can read it again.
func (v *RequestVerifier) Verify(req *http.Request) (ed25519.PublicKey, error) {
	h, err := readSigningHeaders(req.Header)
	if err != nil {
		return nil, err
	}
	pub, err := decodeExact(h.publicKey, ed25519.PublicKeySize, HeaderPublicKey)
	if err != nil {
		return nil, err
	}
	sig, err := decodeExact(h.signature, ed25519.SignatureSize, HeaderSignature)
	if err != nil {
		return nil, err
	}
	now := v.opts.Now()
	ts, err := v.checkTimestamp(h.timestamp, now)
	if err != nil {
		return nil, err
	}
	// A key nobody trusts is refused before its body is read: a stranger
	// may not make the server buffer megabytes.
	if v.opts.KeyAllowed != nil {
		if err := v.opts.KeyAllowed(pub); err != nil {
			return nil, fmt.Errorf("signed request: key %s: %w", h.publicKey, err)
		}
	}
	body, err := readBody(req, v.opts.MaxBody)
	if err != nil {
		return nil, err
	}
	payload := signedPayload(req.Method, requestTarget(req.URL), req.Host, h.contentType, h.timestamp, sha256.Sum256(body))
	if !ed25519.Verify(pub, payload, sig) {
		return nil, fmt.Errorf("signed request: the signature does not verify for key %s and this request", h.publicKey)
	}
	if err := v.replay.record(sha256.Sum256(sig), string(pub), ts.Add(v.opts.Skew), now); err != nil {
		return nil, err
	}
	return pub, nil
}

// signedHeaders are the header values a signature depends on.
type signedHeaders struct {
	publicKey, timestamp, signature, contentType string
}

// readSigningHeaders returns the signing headers and Content-Type, at most
// one of each; ErrNotSigned when none of the signing headers is there.
func readSigningHeaders(hdr http.Header) (signedHeaders, error) {
	names := [...]string{HeaderPublicKey, HeaderTimestamp, HeaderSignature, "Content-Type"}
	var values [len(names)]string
	present := 0
	for i, name := range names {
		vs := hdr.Values(name)
		if len(vs) > 1 {
			return signedHeaders{}, fmt.Errorf("signed request: %d %s headers, want at most one", len(vs), name)
		}
		if len(vs) == 1 {
			values[i] = vs[0]
			if i < 3 {
				present++
			}
		}
	}
	switch {
	case present == 0:
		return signedHeaders{}, ErrNotSigned
	case present < 3:
		var missing []string
		for i, name := range names[:3] {
			if values[i] == "" {
				missing = append(missing, name)
			}
		}
		return signedHeaders{}, fmt.Errorf("signed request: missing or empty %s", strings.Join(missing, ", "))
	}
	return signedHeaders{publicKey: values[0], timestamp: values[1], signature: values[2], contentType: values[3]}, nil
}

// decodeExact decodes the standard base64 of exactly size bytes. Only the
// canonical text is accepted (no stray padding bits, no line breaks), so
// that one value has one spelling.
func decodeExact(text string, size int, header string) ([]byte, error) {
	if len(text) != base64.StdEncoding.EncodedLen(size) {
		return nil, fmt.Errorf("signed request: %s is %d characters, want the standard base64 of %d bytes", header, len(text), size)
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(text)
	if err != nil || len(raw) != size || base64.StdEncoding.EncodeToString(raw) != text {
		return nil, fmt.Errorf("signed request: %s is not the standard base64 of %d bytes", header, size)
	}
	return raw, nil
}

// checkTimestamp parses the timestamp and checks that it is within the
// skew of now.
func (v *RequestVerifier) checkTimestamp(text string, now time.Time) (time.Time, error) {
	if len(text) > len("2006-01-02T15:04:05.999999999Z") {
		return time.Time{}, fmt.Errorf("signed request: %s of %d characters is not an RFC 3339 time in UTC", HeaderTimestamp, len(text))
	}
	ts, err := time.Parse(time.RFC3339Nano, text)
	if err != nil || !strings.HasSuffix(text, "Z") {
		return time.Time{}, fmt.Errorf("signed request: %s %q is not an RFC 3339 time in UTC", HeaderTimestamp, text)
	}
	off := ts.Sub(now)
	dir := "ahead of"
	if off < 0 {
		off, dir = -off, "behind"
	}
	if off > v.opts.Skew {
		return time.Time{}, fmt.Errorf("signed request: timestamp %s is %s %s the server's clock (allowed skew %s)", text, off, dir, v.opts.Skew)
	}
	return ts, nil
}

// readBody reads req's body, at most max bytes, and puts back a body that
// yields the same bytes (and closes the original).
func readBody(req *http.Request, max int64) ([]byte, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	if req.ContentLength > max {
		return nil, fmt.Errorf("signed request: body of %d bytes is over the limit of %d", req.ContentLength, max)
	}
	orig := req.Body
	var buf bytes.Buffer
	if req.ContentLength > 0 {
		buf.Grow(int(req.ContentLength) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(io.LimitReader(orig, max+1))
	body := buf.Bytes()
	req.Body = replayedBody{io.MultiReader(bytes.NewReader(body), orig), orig}
	switch {
	case err != nil:
		return nil, fmt.Errorf("signed request: reading the body: %w", err)
	case int64(len(body)) > max:
		return nil, fmt.Errorf("signed request: body is over the limit of %d bytes", max)
	}
	return body, nil
}

// replayedBody reads what was read before, then the rest of the original.
type replayedBody struct {
	io.Reader
	io.Closer
}

// replayCache remembers accepted signatures (by their SHA-256) until their
// timestamps leave the skew window. Each one is added once to a heap
// ordered by expiry and swept from it once: amortised O(log n) a request,
// with no goroutine.
type replayCache struct {
	mu  sync.Mutex
	max int
	// perSigner caps one key's share, so that one trusted key sending
	// as fast as it can does not fill the cache for everyone.
	perSigner int
	seen      map[[sha256.Size]byte]struct{}
	bySigner  map[string]int
	queue     expiryQueue
}

// record remembers key, a signature by signer, until expires, sweeping
// what expired by now; it refuses a key it already holds, or any when it
// or the signer's share is full.
func (c *replayCache) record(key [sha256.Size]byte, signer string, expires, now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen, c.bySigner = map[[sha256.Size]byte]struct{}{}, map[string]int{}
	}
	for n := now.UnixNano(); len(c.queue) > 0 && c.queue[0].expires < n; {
		e := heap.Pop(&c.queue).(replayEntry)
		delete(c.seen, e.key)
		if c.bySigner[e.signer]--; c.bySigner[e.signer] <= 0 {
			delete(c.bySigner, e.signer)
		}
	}
	if _, ok := c.seen[key]; ok {
		return ErrReplayed
	}
	if len(c.seen) >= c.max {
		return fmt.Errorf("%w (%d remembered)", ErrReplayCacheFull, len(c.seen))
	}
	if c.perSigner > 0 && c.bySigner[signer] >= c.perSigner {
		return fmt.Errorf("%w for this key (%d of its signatures remembered; slow down)", ErrReplayCacheFull, c.bySigner[signer])
	}
	c.seen[key] = struct{}{}
	c.bySigner[signer]++
	heap.Push(&c.queue, replayEntry{expires: expires.UnixNano(), key: key, signer: signer})
	return nil
}

// len is how many signatures the cache holds.
func (c *replayCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

type replayEntry struct {
	expires int64
	key     [sha256.Size]byte
	signer  string
}

// expiryQueue is a min-heap of entries by expiry (container/heap).
type expiryQueue []replayEntry

func (q expiryQueue) Len() int           { return len(q) }
func (q expiryQueue) Less(i, j int) bool { return q[i].expires < q[j].expires }
func (q expiryQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *expiryQueue) Push(x any)        { *q = append(*q, x.(replayEntry)) }
func (q *expiryQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}
