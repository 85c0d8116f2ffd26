package apiserver

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestBufferedResponsesOnlyForPlainReads(t *testing.T) {
	body := strings.Repeat("x", 3*responseBufferSize+7)
	var buffered bool
	h := withBufferedResponses(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, buffered = w.(*bufferedResponseWriter)
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
		{"GET", "/apis/skiff.dev/v1alpha1/namespaces/default/instances/a/log", true},
		{"GET", "/apis/skiff.dev/v1alpha1/namespaces/default/instances/a/log?follow=true", false},
		{"POST", "/apis/skiff.dev/v1alpha1/namespaces/default/workloads", false},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.url, nil))
		if rec.Code != http.StatusTeapot || rec.Header().Get("X-Kind") != "list" || rec.Body.String() != body {
			t.Errorf("%s %s: code %d, %d body bytes: response changed by buffering", tc.method, tc.url, rec.Code, rec.Body.Len())
		}
		if buffered != tc.buffered {
			t.Errorf("%s %s: buffered %v, want %v", tc.method, tc.url, buffered, tc.buffered)
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

// TestBufferedFlush: a buffered response is a Flusher and a CloseNotifier
// (the library's filters assume both; streamed logs went through them), and
// a flush sends what was written so far, in order.
func TestBufferedFlush(t *testing.T) {
	rec := httptest.NewRecorder()
	var atFlush string
	var notifier bool
	h := withBufferedResponses(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, notifier = w.(http.CloseNotifier) //nolint:staticcheck // the library's wrappers require it
		_, _ = w.Write([]byte("first "))
		w.(http.Flusher).Flush()
		atFlush = rec.Body.String()
		_, _ = w.Write([]byte("second"))
	}))
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/apis/skiff.dev/v1alpha1/workloads", nil))
	if atFlush != "first " || rec.Body.String() != "first second" || !rec.Flushed || !notifier {
		t.Errorf("at flush %q, body %q, flushed %v, close notifier %v", atFlush, rec.Body.String(), rec.Flushed, notifier)
	}
}
