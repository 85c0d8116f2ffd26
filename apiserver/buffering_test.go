package apiserver

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestBufferedResponsesOnlyForPlainReads(t *testing.T) {
	body := strings.Repeat("x", 3*responseBufferSize+7)
	var sawFlusher bool
	h := withBufferedResponses(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, sawFlusher = w.(http.Flusher)
		w.Header().Set("X-Kind", "list")
		w.WriteHeader(http.StatusTeapot)
		for i := 0; i < len(body); i += 1000 {
			_, _ = w.Write([]byte(body[i:min(i+1000, len(body))]))
		}
	}))
	for _, tc := range []struct {
		method, url string
		buffered    bool
	}{
		{"GET", "/apis/skiff.dev/v1alpha1/workloads", true},
		{"GET", "/apis/skiff.dev/v1alpha1/workloads?watch=true", false},
		{"GET", "/apis/skiff.dev/v1alpha1/workloads?watch=1", false},
		{"POST", "/apis/skiff.dev/v1alpha1/namespaces/default/workloads", false},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.url, nil))
		if rec.Code != http.StatusTeapot || rec.Header().Get("X-Kind") != "list" || rec.Body.String() != body {
			t.Errorf("%s %s: code %d, %d body bytes: response changed by buffering", tc.method, tc.url, rec.Code, rec.Body.Len())
		}
		if sawFlusher == tc.buffered {
			t.Errorf("%s %s: handler saw a Flusher %v, want %v", tc.method, tc.url, sawFlusher, !tc.buffered)
		}
	}
}

func TestLoopbackResponsesAreNotCompressed(t *testing.T) {
	var sawEncoding string
	h := withoutLoopbackCompression(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawEncoding = r.Header.Get("Accept-Encoding")
	}))
	for _, tc := range []struct {
		remote, want string
	}{
		{"127.0.0.1:5555", ""},
		{"[::1]:5555", ""},
		{"192.0.2.10:5555", "gzip"},
	} {
		req := httptest.NewRequest("GET", "/apis", nil)
		req.RemoteAddr = tc.remote
		req.Header.Set("Accept-Encoding", "gzip")
		h.ServeHTTP(httptest.NewRecorder(), req)
		if sawEncoding != tc.want {
			t.Errorf("client %s: handler saw Accept-Encoding %q, want %q", tc.remote, sawEncoding, tc.want)
		}
	}
}
