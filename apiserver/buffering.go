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

// streams reports a watch or a log (logs stream their body, and the
// library flushes their headers first); the query is parsed only when it
// can hold a watch.
func streams(r *http.Request) bool {
	if strings.HasSuffix(r.URL.Path, "/log") {
		return true
	}
	raw := r.URL.RawQuery
	if !strings.Contains(raw, "watch") && !strings.Contains(raw, "follow") {
		return false
	}
	q := r.URL.Query()
	return q.Get("watch") == "true" || q.Get("watch") == "1" || q.Get("follow") == "true"
}

// bufferedResponseWriter writes the body through a buffer; headers go
// straight through. It deliberately hides Flusher, Hijacker and Unwrap
// (a flush that skipped the buffer would reorder the body): only
// non-streaming requests get it.
type bufferedResponseWriter struct {
	http.ResponseWriter
	buf *bufio.Writer
}

func (b *bufferedResponseWriter) Write(p []byte) (int, error) { return b.buf.Write(p) }
