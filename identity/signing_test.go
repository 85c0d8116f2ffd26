package identity

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

var signingNow = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

func newTestIdentity(t testing.TB) *Identity {
	t.Helper()
	id, err := New()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// signed returns a request signed by id at signingNow, as the client
// would send it.
func signed(t testing.TB, id *Identity, method, target, contentType string, body []byte) *http.Request {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, "https://skiff.example:6443"+target, r)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if err := id.SignRequest(req, signingNow); err != nil {
		t.Fatal(err)
	}
	return req
}

// wireRequest is a request as it travels: every part a signature binds.
type wireRequest struct {
	method, path, query, host, contentType string
	publicKey, timestamp, signature        string
	body                                   string
}

func wireOf(t testing.TB, req *http.Request) wireRequest {
	t.Helper()
	body, err := io.ReadAll(req.Body)
	if err != nil {
		t.Fatal(err)
	}
	return wireRequest{
		method: req.Method, path: req.URL.EscapedPath(), query: req.URL.RawQuery, host: req.URL.Host,
		contentType: req.Header.Get("Content-Type"),
		publicKey:   req.Header.Get(HeaderPublicKey), timestamp: req.Header.Get(HeaderTimestamp), signature: req.Header.Get(HeaderSignature),
		body: string(body),
	}
}

// serverRequest is w as the server hands it to a handler. A target the
// server could not parse is set as the path, unparsed.
func (w wireRequest) serverRequest() *http.Request {
	target := w.path
	if w.query != "" {
		target += "?" + w.query
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		u = &url.URL{Path: w.path, RawQuery: w.query}
	}
	hdr := http.Header{}
	for name, v := range map[string]string{"Content-Type": w.contentType, HeaderPublicKey: w.publicKey, HeaderTimestamp: w.timestamp, HeaderSignature: w.signature} {
		if v != "" {
			hdr[http.CanonicalHeaderKey(name)] = []string{v}
		}
	}
	return &http.Request{
		Method: w.method, URL: u, RequestURI: target, Host: w.host, Header: hdr,
		Body: io.NopCloser(strings.NewReader(w.body)), ContentLength: int64(len(w.body)),
	}
}

func TestSignedRequestVerifies(t *testing.T) {
	id := newTestIdentity(t)
	cases := []struct {
		name, method, target, contentType string
		body                              []byte
	}{
		{name: "GET without a body", method: "GET", target: "/api/v1/namespaces"},
		{name: "GET with an escaped path and a query", method: "GET", target: "/apis/x/v1/namespaces/a%2Fb/things?labelSelector=app%3Dweb&limit=5"},
		{name: "POST with a JSON body", method: "POST", target: "/apis/skiff.dev/v1alpha1/namespaces/default/workloads", contentType: "application/json", body: []byte(`{"kind":"Workload"}`)},
		{name: "PUT with a body at the size limit", method: "PUT", target: "/x", contentType: "application/yaml", body: bytes.Repeat([]byte("a"), 1024)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := wireOf(t, signed(t, id, tc.method, tc.target, tc.contentType, tc.body)).serverRequest()
			v := NewRequestVerifier(VerifierOptions{Now: fixedClock(signingNow), MaxBody: 1024})
			pub, err := v.Verify(req)
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if !pub.Equal(id.Public()) {
				t.Fatal("verify returned another key")
			}
			got, err := io.ReadAll(req.Body)
			if err != nil || !bytes.Equal(got, tc.body) || req.ContentLength != int64(len(tc.body)) {
				t.Fatalf("handler reads %q (%v), content length %d; want %q", got, err, req.ContentLength, tc.body)
			}
		})
	}
}

// TestSignedRequestOverHTTP: what the Go client sends over HTTP/1.1 and
// HTTP/2 is what the server verifies, escaped path and query included,
// and the handler reads the body after Verify.
func TestSignedRequestOverHTTP(t *testing.T) {
	id := newTestIdentity(t)
	v := NewRequestVerifier(VerifierOptions{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pub, err := v.Verify(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s", ID(pub), r.Proto, body)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	for _, proto := range []string{"HTTP/1.1", "HTTP/2.0"} {
		t.Run(proto+" request verifies and its body reads again", func(t *testing.T) {
			client := srv.Client()
			if proto == "HTTP/1.1" {
				tr := client.Transport.(*http.Transport).Clone()
				tr.Protocols = new(http.Protocols)
				tr.Protocols.SetHTTP1(true)
				tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
				client = &http.Client{Transport: tr}
			}
			req, err := http.NewRequest("POST", srv.URL+"/apis/x/v1/namespaces/a%2Fb/things?labelSelector=app%3Dweb&limit=5", strings.NewReader(`{"a":1}`))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			if err := id.SignRequest(req, time.Now()); err != nil {
				t.Fatal(err)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, _ := io.ReadAll(resp.Body)
			if want := ID(id.Public()) + " " + proto + ` {"a":1}`; resp.StatusCode != http.StatusOK || string(got) != want {
				t.Fatalf("%d %q, want 200 %q", resp.StatusCode, got, want)
			}
		})
	}
}

func TestSignedRequestRefusals(t *testing.T) {
	id := newTestIdentity(t)
	post := func() wireRequest {
		return wireOf(t, signed(t, id, "POST", "/x", "application/json", []byte(`{"a":1}`)))
	}
	without := func(header string) func(w *wireRequest) {
		return func(w *wireRequest) {
			*map[string]*string{HeaderPublicKey: &w.publicKey, HeaderTimestamp: &w.timestamp, HeaderSignature: &w.signature}[header] = ""
		}
	}
	inCET := signingNow.In(time.FixedZone("CET", 3600)).Format(time.RFC3339Nano)
	cases := []struct {
		name   string
		now    time.Time
		mutate func(w *wireRequest)
		// twice sends the request a second time, to the same verifier.
		twice bool
		want  string
		is    error
	}{
		{name: "a replay within the window", twice: true, is: ErrReplayed},
		{name: "a timestamp 7m ahead of the clock", now: signingNow.Add(-7 * time.Minute), want: "is 7m0s ahead of the server's clock (allowed skew 5m0s)"},
		{name: "a timestamp 7m behind the clock", now: signingNow.Add(7 * time.Minute), want: "is 7m0s behind the server's clock (allowed skew 5m0s)"},
		{name: "a timestamp just past the skew", now: signingNow.Add(5*time.Minute + time.Nanosecond), want: "allowed skew"},
		{name: "a body over the limit", mutate: func(w *wireRequest) { w.body = strings.Repeat("x", 2048) }, want: "body of 2048 bytes is over the limit of 1024"},
		{name: "no public key", mutate: without(HeaderPublicKey), want: "missing or empty " + HeaderPublicKey},
		{name: "no timestamp", mutate: without(HeaderTimestamp), want: "missing or empty " + HeaderTimestamp},
		{name: "no signature", mutate: without(HeaderSignature), want: "missing or empty " + HeaderSignature},
		{name: "only a signature", mutate: func(w *wireRequest) { without(HeaderPublicKey)(w); without(HeaderTimestamp)(w) }, want: "missing or empty " + HeaderPublicKey + ", " + HeaderTimestamp},
		{name: "a public key of the wrong size", mutate: func(w *wireRequest) { w.publicKey = base64.StdEncoding.EncodeToString(make([]byte, 16)) }, want: HeaderPublicKey + " is 24 characters"},
		{name: "a signature with padding bits set", mutate: func(w *wireRequest) { w.signature = withPaddingBit(w.signature) }, want: HeaderSignature + " is not the standard base64 of 64 bytes"},
		{name: "a timestamp not in UTC", mutate: func(w *wireRequest) { w.timestamp = inCET }, want: "is not an RFC 3339 time in UTC"},
		{name: "a timestamp not in RFC 3339", mutate: func(w *wireRequest) { w.timestamp = signingNow.Format(time.RFC1123) }, want: "is not an RFC 3339 time in UTC"},
		{name: "another key's signature", mutate: func(w *wireRequest) { w.publicKey = newTestIdentity(t).PublicKeyString() }, want: "the signature does not verify"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			now := signingNow
			if !tc.now.IsZero() {
				now = tc.now
			}
			v := NewRequestVerifier(VerifierOptions{Now: fixedClock(now), MaxBody: 1024})
			w := post()
			if tc.mutate != nil {
				tc.mutate(&w)
			}
			if tc.twice {
				if _, err := v.Verify(w.serverRequest()); err != nil {
					t.Fatalf("first time: %v", err)
				}
			}
			pub, err := v.Verify(w.serverRequest())
			switch {
			case err == nil || pub != nil:
				t.Fatalf("accepted (key %v)", pub)
			case errors.Is(err, ErrNotSigned):
				t.Fatalf("%v: a signed request is not ErrNotSigned", err)
			case tc.is != nil && !errors.Is(err, tc.is):
				t.Fatalf("%v, want %v", err, tc.is)
			case !strings.Contains(err.Error(), tc.want):
				t.Fatalf("%v, want it to say %q", err, tc.want)
			}
		})
	}
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestSignedRequestBodyReadAtMostMaxBodyPlusOne: a body of unknown length is read
// only one byte past the limit, and what was read is put back.
func TestSignedRequestBodyReadAtMostMaxBodyPlusOne(t *testing.T) {
	id := newTestIdentity(t)
	req := signed(t, id, "POST", "/x", "application/json", bytes.Repeat([]byte("x"), 4096))
	body := &countingReader{r: req.Body}
	req.Body, req.ContentLength = io.NopCloser(body), -1
	v := NewRequestVerifier(VerifierOptions{Now: fixedClock(signingNow), MaxBody: 1024})
	if _, err := v.Verify(req); err == nil || !strings.Contains(err.Error(), "over the limit of 1024 bytes") {
		t.Fatalf("%v, want the body refused", err)
	}
	if body.n != 1025 {
		t.Fatalf("read %d bytes, want 1025", body.n)
	}
	if rest, _ := io.ReadAll(req.Body); len(rest) != 4096 {
		t.Fatalf("the body reads %d bytes after Verify, want all 4096", len(rest))
	}
}

// withPaddingBit sets an unused low bit of the last character of a
// base64 text with "==" padding: lenient decoders read the same bytes.
func withPaddingBit(text string) string {
	last := len(text) - 3
	k := strings.IndexByte(base64Alphabet, text[last])
	return text[:last] + string(base64Alphabet[k^1]) + text[last+1:]
}

func TestSignedRequestVerifierGivesErrNotSignedForUnsigned(t *testing.T) {
	v := NewRequestVerifier(VerifierOptions{})
	req := httptest.NewRequest("POST", "/x", strings.NewReader("body"))
	req.Header.Set("Content-Type", "text/plain")
	if pub, err := v.Verify(req); pub != nil || !errors.Is(err, ErrNotSigned) {
		t.Fatalf("%v, %v; want nil, ErrNotSigned", pub, err)
	}
	if body, _ := io.ReadAll(req.Body); string(body) != "body" {
		t.Fatalf("an unsigned request's body was consumed: %q left", body)
	}
}

func TestSignedRequestDuplicateHeadersRefused(t *testing.T) {
	id := newTestIdentity(t)
	for _, header := range []string{HeaderPublicKey, HeaderSignature, HeaderTimestamp, "Content-Type"} {
		t.Run("a second "+header+" is refused", func(t *testing.T) {
			req := signed(t, id, "POST", "/x", "application/json", []byte("{}"))
			req.Header.Add(header, req.Header.Get(header))
			v := NewRequestVerifier(VerifierOptions{Now: fixedClock(signingNow)})
			if _, err := v.Verify(req); err == nil || !strings.Contains(err.Error(), "want at most one") {
				t.Fatalf("%v, want a refusal of the second header", err)
			}
		})
	}
}

// TestSignedRequestReplayCacheFullRefusesThenSweeps: a full cache refuses new signed
// requests instead of forgetting live ones; once their window passes they
// are swept and requests are accepted again.
func TestSignedRequestReplayCacheFullRefusesThenSweeps(t *testing.T) {
	id := newTestIdentity(t)
	now := signingNow
	v := NewRequestVerifier(VerifierOptions{Now: func() time.Time { return now }, MaxReplayEntries: 2, MaxReplayEntriesPerKey: 2})
	sign := func(at time.Time) *http.Request {
		req := httptest.NewRequest("GET", "/x", nil)
		if err := id.SignRequest(req, at); err != nil {
			t.Fatal(err)
		}
		return req
	}
	for i := range 2 {
		if _, err := v.Verify(sign(now.Add(time.Duration(i)))); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if _, err := v.Verify(sign(now.Add(2))); !errors.Is(err, ErrReplayCacheFull) {
		t.Fatalf("third request while full: %v, want ErrReplayCacheFull", err)
	}
	if n := v.replay.len(); n != 2 {
		t.Fatalf("cache holds %d, want 2", n)
	}
	now = now.Add(DefaultSignatureSkew + time.Second)
	if _, err := v.Verify(sign(now)); err != nil {
		t.Fatalf("after the window: %v", err)
	}
	if n := v.replay.len(); n != 1 {
		t.Fatalf("after the window the cache holds %d, want the expired 2 swept and 1 new", n)
	}
}

// TestSignedRequestOneKeyCannotFillTheCache: a key that used its share of
// the replay cache is refused; another key is still accepted.
func TestSignedRequestOneKeyCannotFillTheCache(t *testing.T) {
	busy, other := newTestIdentity(t), newTestIdentity(t)
	v := NewRequestVerifier(VerifierOptions{Now: fixedClock(signingNow), MaxReplayEntries: 10, MaxReplayEntriesPerKey: 3})
	sign := func(id *Identity, i int) *http.Request {
		req := httptest.NewRequest("GET", fmt.Sprintf("/x/%d", i), nil)
		if err := id.SignRequest(req, signingNow); err != nil {
			t.Fatal(err)
		}
		return req
	}
	for i := range 3 {
		if _, err := v.Verify(sign(busy, i)); err != nil {
			t.Fatalf("request %d of the busy key: %v", i, err)
		}
	}
	if _, err := v.Verify(sign(busy, 3)); !errors.Is(err, ErrReplayCacheFull) {
		t.Fatalf("the busy key past its share: %v, want ErrReplayCacheFull", err)
	}
	if _, err := v.Verify(sign(other, 0)); err != nil {
		t.Fatalf("another key while the busy one is at its share: %v", err)
	}
}

// TestSignedRequestConcurrentReplays: of many concurrent copies of one signed
// request, exactly one is accepted.
func TestSignedRequestConcurrentReplays(t *testing.T) {
	w := wireOf(t, signed(t, newTestIdentity(t), "POST", "/x", "application/json", []byte("{}")))
	v := NewRequestVerifier(VerifierOptions{Now: fixedClock(signingNow)})
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted, replayed := 0, 0
	for range 32 {
		wg.Go(func() {
			_, err := v.Verify(w.serverRequest())
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				accepted++
			case errors.Is(err, ErrReplayed):
				replayed++
			default:
				t.Errorf("verify: %v", err)
			}
		})
	}
	wg.Wait()
	if accepted != 1 || replayed != 31 {
		t.Fatalf("%d accepted, %d replays; want 1 and 31", accepted, replayed)
	}
}

func TestSignedRequestKeyAllowedRunsBeforeTheReplayCache(t *testing.T) {
	id := newTestIdentity(t)
	v := NewRequestVerifier(VerifierOptions{Now: fixedClock(signingNow), KeyAllowed: func(ed25519.PublicKey) error { return errors.New("not trusted") }})
	if _, err := v.Verify(signed(t, id, "GET", "/x", "", nil)); err == nil || !strings.Contains(err.Error(), "not trusted") {
		t.Fatalf("%v, want the key refused", err)
	}
	if n := v.replay.len(); n != 0 {
		t.Fatalf("a refused key left %d signatures in the cache", n)
	}
}

// mutation is one changed part of a signed request.
type mutation struct {
	name  string
	apply func(w *wireRequest)
}

type wireField struct {
	name string
	at   func(w *wireRequest) *string
	// rawSize, for a base64 header, is the size of what it encodes.
	rawSize int
}

var wireFields = []wireField{
	{name: "method", at: func(w *wireRequest) *string { return &w.method }},
	{name: "path", at: func(w *wireRequest) *string { return &w.path }},
	{name: "query", at: func(w *wireRequest) *string { return &w.query }},
	{name: "host", at: func(w *wireRequest) *string { return &w.host }},
	{name: "content type", at: func(w *wireRequest) *string { return &w.contentType }},
	{name: "timestamp", at: func(w *wireRequest) *string { return &w.timestamp }},
	{name: "body", at: func(w *wireRequest) *string { return &w.body }},
	{name: "signature", at: func(w *wireRequest) *string { return &w.signature }, rawSize: ed25519.SignatureSize},
	{name: "public key", at: func(w *wireRequest) *string { return &w.publicKey }, rawSize: ed25519.PublicKeySize},
}

const base64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="

// mutationsOf lists single changes of w: each bit of each byte of each
// field flipped; for the base64 headers also each bit of the decoded bytes
// (re-encoded), and each character replaced by every other base64 one.
func mutationsOf(w wireRequest) []mutation {
	var ms []mutation
	set := func(name string, f wireField, value string) {
		ms = append(ms, mutation{name: name, apply: func(w *wireRequest) { *f.at(w) = value }})
	}
	flip := func(b []byte, i, bit int) []byte {
		b = bytes.Clone(b)
		b[i] ^= 1 << bit
		return b
	}
	for _, f := range wireFields {
		text := []byte(*f.at(&w))
		for i := range text {
			for bit := range 8 {
				set(fmt.Sprintf("%s byte %d bit %d", f.name, i, bit), f, string(flip(text, i, bit)))
			}
		}
		if f.rawSize == 0 {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(string(text))
		if err != nil || len(raw) != f.rawSize {
			panic(fmt.Sprintf("%s %q: not the base64 of %d bytes", f.name, text, f.rawSize))
		}
		for i := range raw {
			for bit := range 8 {
				set(fmt.Sprintf("%s decoded byte %d bit %d", f.name, i, bit), f, base64.StdEncoding.EncodeToString(flip(raw, i, bit)))
			}
		}
		for i := range text {
			for _, c := range []byte(base64Alphabet) {
				if c != text[i] {
					b := bytes.Clone(text)
					b[i] = c
					set(fmt.Sprintf("%s character %d as %q", f.name, i, c), f, string(b))
				}
			}
		}
	}
	return ms
}

// TestSignedRequestEveryMutationRefused changes each bit of every part of a signed
// request, one at a time, and checks that each change is refused, for the
// change and not as a replay, by a verifier that accepts the unchanged
// request right after.
func TestSignedRequestEveryMutationRefused(t *testing.T) {
	id := newTestIdentity(t)
	body := []byte(`{"apiVersion":"skiff.dev/v1alpha1","kind":"Workload","metadata":{"name":"web","namespace":"default","labels":{"app":"web"}},"spec":{"replicas":3,"template":{"spec":{"containers":[{"name":"web","image":"registry.example/web:1.2.3","args":["--listen=:8080","--log-level=info"]}]}}}}`)
	for len(body) < 1024 {
		body = append(body, ' ')
	}
	orig := wireOf(t, signed(t, id, "POST", "/apis/skiff.dev/v1alpha1/namespaces/default/workloads?fieldManager=skiff&dryRun=All", "application/json", body))
	verifier := func() *RequestVerifier { return NewRequestVerifier(VerifierOptions{Now: fixedClock(signingNow)}) }
	if _, err := verifier().Verify(orig.serverRequest()); err != nil {
		t.Fatalf("the unmutated request: %v", err)
	}
	ms := mutationsOf(orig)
	refused, unparseable := 0, 0
	for _, m := range ms {
		w := orig
		m.apply(&w)
		if w == orig {
			t.Fatalf("%s: changes nothing", m.name)
		}
		if _, err := url.ParseRequestURI(w.path + "?" + w.query); err != nil {
			unparseable++
		}
		v := verifier()
		pub, err := v.Verify(w.serverRequest())
		switch {
		case err == nil || pub != nil:
			t.Errorf("%s: accepted", m.name)
			continue
		case errors.Is(err, ErrReplayed), errors.Is(err, ErrNotSigned), errors.Is(err, ErrReplayCacheFull):
			t.Errorf("%s: refused, but not for the change: %v", m.name, err)
			continue
		}
		if _, err := v.Verify(orig.serverRequest()); err != nil {
			t.Fatalf("%s: the unmutated request fails in the same verifier: %v", m.name, err)
		}
		refused++
	}
	t.Logf("%d of %d mutated requests refused (%d with a target net/http would not parse)", refused, len(ms), unparseable)
	if refused != len(ms) || refused < 10000 {
		t.Fatalf("%d of %d mutations refused; want all, and at least 10000", refused, len(ms))
	}
}

// BenchmarkVerifySignedRequest verifies a signed 1 KiB POST; each request
// is signed at its own nanosecond, so none is a replay.
func BenchmarkVerifySignedRequest(b *testing.B) {
	id := newTestIdentity(b)
	body := bytes.Repeat([]byte("x"), 1024)
	reqs := make([]*http.Request, b.N)
	for i := range reqs {
		req := httptest.NewRequest("POST", "https://skiff.example:6443/apis/skiff.dev/v1alpha1/namespaces/default/workloads", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if err := id.SignRequest(req, signingNow.Add(time.Duration(i))); err != nil {
			b.Fatal(err)
		}
		reqs[i] = req
	}
	v := NewRequestVerifier(VerifierOptions{Now: fixedClock(signingNow)})
	b.ReportAllocs()
	b.ResetTimer()
	for _, req := range reqs {
		if _, err := v.Verify(req); err != nil {
			b.Fatal(err)
		}
	}
}
