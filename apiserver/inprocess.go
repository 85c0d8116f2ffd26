package apiserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
)

// InProcessAdminConfig is the admin's client of this server for the
// parts in its process (the controllers of `skiff server`). Its requests
// go to the server's handler by function call: no TLS, no socket, no
// HTTP/2 frames on either side. They pass every filter as over the
// network: the admin's certificate is presented to authentication as the
// TLS handshake would, and authorization, audit and fair queuing see the
// same request. Requests made while Run does not serve fail. It serves
// no upgrade (exec, attach, port forwarding): nothing hijacks the
// connection there is not. Responses are not compressed: the server
// compresses none for a loopback client (withoutLoopbackCompression).
func (s *Server) InProcessAdminConfig() *rest.Config {
	return &rest.Config{Host: s.URL(), Transport: &inProcessTransport{handler: &s.serving, cert: &certCache{file: s.adminCert.Read}}}
}

// inProcessTransport serves requests with a server's handler, in process.
type inProcessTransport struct {
	// handler is the server's handler chain, nil until it serves.
	handler *atomic.Pointer[http.Handler]
	cert    *certCache
}

// inProcessAddr is the client address the server's filters (audit's
// source IPs) see for an in-process request.
const inProcessAddr = "127.0.0.1:0"

func (t *inProcessTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	h := t.handler.Load()
	if h == nil {
		closeBody(req)
		return nil, errors.New("skiff API server in process: not serving")
	}
	cert, err := t.cert.get()
	if err != nil {
		closeBody(req)
		return nil, fmt.Errorf("skiff API server in process: %w", err)
	}
	// The request's context ends with the handler, as a server's does.
	ctx, cancel := context.WithCancel(req.Context())
	in := req.Clone(ctx)
	in.RequestURI = req.URL.RequestURI()
	// A server's request URL has its path and query only.
	in.URL = &url.URL{Path: req.URL.Path, RawPath: req.URL.RawPath, RawQuery: req.URL.RawQuery}
	in.RemoteAddr = inProcessAddr
	in.Host = req.URL.Host
	in.Proto, in.ProtoMajor, in.ProtoMinor = "HTTP/1.1", 1, 1
	in.TLS = &tls.ConnectionState{Version: tls.VersionTLS13, HandshakeComplete: true, PeerCertificates: []*x509.Certificate{cert}}
	if in.Body == nil {
		in.Body = http.NoBody
	}
	body, out := io.Pipe()
	// A client gone (its context ended) is a connection closed: the
	// handler's writes fail, as they would.
	unwatch := context.AfterFunc(ctx, func() { _ = out.CloseWithError(context.Cause(ctx)) })
	w := &pipeResponse{ctx: ctx, header: http.Header{}, body: out, started: make(chan struct{})}
	go func() {
		var cut error
		defer cancel()
		defer func() { _ = in.Body.Close() }()
		defer unwatch()
		defer func() {
			// The handler chain panics with http.ErrAbortHandler to cut a
			// response short, as a connection would be; the client sees
			// the error, before or during the body.
			if r := recover(); r != nil {
				cut = fmt.Errorf("skiff API server in process: %s %s: the response was cut short: %v", req.Method, req.URL.Path, r)
				if r != http.ErrAbortHandler {
					klog.ErrorS(nil, "panic serving an in-process request", "panic", r, "method", req.Method, "url", req.URL.String(), "stack", string(debug.Stack()))
				}
			}
			w.finish(cut)
			_ = out.CloseWithError(cut)
		}()
		(*h).ServeHTTP(w, in)
	}()
	select {
	case <-w.started:
	case <-req.Context().Done():
		_ = body.CloseWithError(req.Context().Err())
		return nil, req.Context().Err()
	}
	if err := req.Context().Err(); err != nil {
		// The handler may have given up on the request without a word.
		_ = body.CloseWithError(err)
		return nil, err
	}
	if w.err != nil {
		return nil, w.err
	}
	return &http.Response{
		Status:        fmt.Sprintf("%d %s", w.status, http.StatusText(w.status)),
		StatusCode:    w.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        w.sent,
		Body:          &closingBody{PipeReader: body, cancel: cancel},
		ContentLength: -1,
		Request:       req,
	}, nil
}

// closingBody is an in-process response's body. Closing it ends the
// request, as closing a connection does: a watch's handler waits for
// events, not writing, and would not see the pipe closed.
type closingBody struct {
	*io.PipeReader
	cancel context.CancelFunc
}

func (b *closingBody) Close() error {
	b.cancel()
	return b.PipeReader.Close()
}

// closeBody closes a request's body, as a RoundTripper must, also when it
// fails.
func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// pipeResponse is the server's side of an in-process response: the
// status and headers once written, the body through a pipe the client
// reads.
type pipeResponse struct {
	ctx     context.Context
	header  http.Header
	body    *io.PipeWriter
	once    sync.Once
	started chan struct{}
	// status and sent (the headers), or err (nothing was sent), are set
	// once, before started closes.
	status int
	sent   http.Header
	err    error
}

func (w *pipeResponse) Header() http.Header { return w.header }

func (w *pipeResponse) WriteHeader(status int) { w.start(status, nil) }

func (w *pipeResponse) start(status int, err error) {
	w.once.Do(func() {
		w.status, w.sent, w.err = status, w.header.Clone(), err
		close(w.started)
	})
}

// finish ends a response the handler returned from: a 200 if it wrote
// nothing, as net/http's server sends; err if it was cut short before.
func (w *pipeResponse) finish(err error) { w.start(http.StatusOK, err) }

func (w *pipeResponse) Write(p []byte) (int, error) {
	w.start(http.StatusOK, nil)
	return w.body.Write(p)
}

// Flush is a no-op: the pipe hands each write to the reader.
func (w *pipeResponse) Flush() { w.start(http.StatusOK, nil) }

// CloseNotify tells when the request ends: its client gone or the handler
// returned. The library's response writers stream (watches) only over a
// writer that has it, as net/http's have.
func (w *pipeResponse) CloseNotify() <-chan bool {
	ch := make(chan bool, 1)
	go func() {
		<-w.ctx.Done()
		ch <- true
	}()
	return ch
}

// certCache holds the admin's certificate, read again from its file
// (which the server renews) at most once a minute.
type certCache struct {
	file func() (*x509.Certificate, error)

	mu   sync.Mutex
	cert *x509.Certificate
	read time.Time
}

func (c *certCache) get() (*x509.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if c.cert != nil && now.Sub(c.read) < time.Minute && now.Before(c.cert.NotAfter) {
		return c.cert, nil
	}
	cert, err := c.file()
	if err != nil {
		if c.cert != nil && now.Before(c.cert.NotAfter) {
			return c.cert, nil // the one read before still serves
		}
		return nil, fmt.Errorf("admin certificate: %w", err)
	}
	c.cert, c.read = cert, now
	return cert, nil
}
