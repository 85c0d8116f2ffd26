package apiserver

import (
	"bufio"
	"net/http"
	"strings"
	"sync"
)

// responseBufferSize is the write size for buffered responses. Go's HTTP/2
// server hands each write of a handler to its connection goroutine in
// chunks of 4 KiB and waits for each; a list encoded item by item would
// otherwise cost one such round trip per 4 KiB.
const responseBufferSize = 256 << 10

var responseBuffers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, responseBufferSize) }}

// withBufferedResponses buffers the responses of plain reads (lists and
// gets). Watches, upgrades (WebSocket) and writes pass through unbuffered:
// they stream, or are small.
func withBufferedResponses(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.Header.Get("Upgrade") != "" || streams(r) {
			next.ServeHTTP(w, r)
			return
		}
		buf := responseBuffers.Get().(*bufio.Writer)
		buf.Reset(w)
		bw := &bufferedResponseWriter{ResponseWriter: w, buf: buf}
		defer func() {
			_ = buf.Flush()
			buf.Reset(nil)
			responseBuffers.Put(buf)
		}()
		next.ServeHTTP(bw, r)
	})
}

// streams reports a watch or a followed log; the query is parsed only
// when it can hold one.
func streams(r *http.Request) bool {
	raw := r.URL.RawQuery
	if !strings.Contains(raw, "watch") && !strings.Contains(raw, "follow") {
		return false
	}
	q := r.URL.Query()
	return q.Get("watch") == "true" || q.Get("watch") == "1" || q.Get("follow") == "true"
}

// bufferedResponseWriter writes the body through a buffer; headers go
// straight through. It hides Hijacker and Unwrap (a write that skipped the
// buffer would reorder the body); Flush empties the buffer first. The
// library's filters assume every response writer is a Flusher and a
// CloseNotifier, as net/http's are.
type bufferedResponseWriter struct {
	http.ResponseWriter
	buf *bufio.Writer
}

func (b *bufferedResponseWriter) Write(p []byte) (int, error) { return b.buf.Write(p) }

// CloseNotify is the underlying writer's; a writer without one never
// reports a close.
func (b *bufferedResponseWriter) CloseNotify() <-chan bool {
	//nolint:staticcheck // the library's response writer wrappers want it
	if cn, ok := b.ResponseWriter.(http.CloseNotifier); ok {
		return cn.CloseNotify()
	}
	return nil
}

// Flush sends what is buffered, then flushes the connection.
func (b *bufferedResponseWriter) Flush() {
	_ = b.buf.Flush()
	if f, ok := b.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
