package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"skiff.dev/skiff/apiserver/rbac"
	"skiff.dev/skiff/identity"
)

// signedHTTPClient trusts the test server's certificate and presents
// none: a signed request's headers alone say who sends it.
func signedHTTPClient(t *testing.T, ts *testServer) *http.Client {
	t.Helper()
	tlsConfig, err := rest.TLSConfigFor(&rest.Config{Host: ts.cfg.Host, TLSClientConfig: rest.TLSClientConfig{
		CAData: ts.cfg.CAData, CAFile: ts.cfg.CAFile, ServerName: ts.cfg.ServerName,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConfig}}
}

// signedRequest is method path on the test server with body, signed by
// id at at.
func signedRequest(t *testing.T, ts *testServer, id *identity.Identity, method, path string, body []byte, at time.Time) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, ts.srv.URL()+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if err := id.SignRequest(req, at); err != nil {
		t.Fatal(err)
	}
	return req
}

// sendSigned does req and returns its status and body.
func sendSigned(t *testing.T, hc *http.Client, req *http.Request) (int, []byte) {
	t.Helper()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// replayOf is req sent again byte for byte: the same headers, signature
// and body.
func replayOf(t *testing.T, req *http.Request) *http.Request {
	t.Helper()
	again := req.Clone(context.Background())
	if req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			t.Fatal(err)
		}
		again.Body = body
	}
	return again
}

// TestSignedRequestsAgainstServer sends requests signed with personal
// keys, and no client certificate, to a real server.
func TestSignedRequestsAgainstServer(t *testing.T) {
	ts := startTestServer(t, t.TempDir())
	admin := rbacAdmin(t, ts)
	ctx := context.Background()
	hc := signedHTTPClient(t, ts)
	viewer := newPersonalKey(t, ts)
	bindClusterRole(t, admin, viewer, rbac.ViewerRole)
	operator := newPersonalKey(t, ts)
	bindClusterRole(t, admin, operator, rbac.OperatorRole)
	const workloads = "/apis/skiff.dev/v1alpha1/namespaces/default/workloads"
	const configMaps = "/api/v1/namespaces/default/configmaps"
	configMap := func(name string) []byte {
		cm := corev1.ConfigMap{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Data:       map[string]string{"greeting": "grüße, 世界\nline two\t\"quoted\"", "empty": ""},
		}
		data, err := json.Marshal(cm)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}

	t.Run("a viewer's GET, then its replay", func(t *testing.T) {
		req := signedRequest(t, ts, viewer.id, "GET", workloads, nil, time.Now())
		if code, body := sendSigned(t, hc, req); code != http.StatusOK {
			t.Fatalf("signed GET: %d %s, want 200", code, body)
		}
		if code, body := sendSigned(t, hc, replayOf(t, req)); code != http.StatusUnauthorized {
			t.Fatalf("replayed GET: %d %s, want 401", code, body)
		}
	})

	t.Run("an operator's POST arrives intact", func(t *testing.T) {
		sent := configMap("signed")
		code, body := sendSigned(t, hc, signedRequest(t, ts, operator.id, "POST", configMaps, sent, time.Now()))
		if code != http.StatusCreated {
			t.Fatalf("signed POST: %d %s, want 201", code, body)
		}
		var want, got corev1.ConfigMap
		if err := json.Unmarshal(sent, &want); err != nil {
			t.Fatal(err)
		}
		if err := admin.Get(ctx, client.ObjectKey{Namespace: "default", Name: "signed"}, &got); err != nil {
			t.Fatal(err)
		}
		if len(got.Data) != len(want.Data) || got.Data["greeting"] != want.Data["greeting"] || got.Data["empty"] != "" {
			t.Fatalf("stored data %q, sent %q", got.Data, want.Data)
		}
	})

	t.Run("a timestamp 10 minutes old", func(t *testing.T) {
		req := signedRequest(t, ts, viewer.id, "GET", workloads, nil, time.Now().Add(-10*time.Minute))
		if code, body := sendSigned(t, hc, req); code != http.StatusUnauthorized {
			t.Fatalf("stale GET: %d %s, want 401", code, body)
		}
	})

	t.Run("an unbound key", func(t *testing.T) {
		stranger, err := identity.New()
		if err != nil {
			t.Fatal(err)
		}
		req := signedRequest(t, ts, stranger, "GET", workloads, nil, time.Now())
		if code, body := sendSigned(t, hc, req); code != http.StatusUnauthorized {
			t.Fatalf("GET by an unbound key: %d %s, want 401", code, body)
		}
	})

	t.Run("a body changed after signing", func(t *testing.T) {
		req := signedRequest(t, ts, operator.id, "POST", configMaps, configMap("tampered"), time.Now())
		body, err := io.ReadAll(req.Body)
		if err != nil {
			t.Fatal(err)
		}
		i := bytes.Index(body, []byte("line two"))
		body[i] ^= 0x01 // 'l' to 'm': still valid JSON
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = nil
		if code, resp := sendSigned(t, hc, req); code != http.StatusUnauthorized {
			t.Fatalf("tampered POST: %d %s, want 401", code, resp)
		}
		err = admin.Get(ctx, client.ObjectKey{Namespace: "default", Name: "tampered"}, &corev1.ConfigMap{})
		if !apierrors.IsNotFound(err) {
			t.Fatalf("the tampered ConfigMap: %v, want NotFound", err)
		}
	})

	t.Run("a request signed for another server", func(t *testing.T) {
		// Signed for host other.example, sent here: a replay from another
		// cluster, whose replay cache this server does not share.
		req, err := http.NewRequest("GET", "https://other.example"+workloads, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := viewer.id.SignRequest(req, time.Now()); err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(ts.srv.URL())
		req.URL.Host, req.Host = u.Host, "other.example" // the Host header as signed
		if code, body := sendSigned(t, hc, req); code != http.StatusUnauthorized {
			t.Fatalf("GET signed for another host: %d %s, want 401", code, body)
		}
	})

	t.Run("a signed request asking to impersonate", func(t *testing.T) {
		req := signedRequest(t, ts, viewer.id, "GET", workloads, nil, time.Now())
		req.Header.Set("Impersonate-User", "skiff:admin")
		if code, body := sendSigned(t, hc, req); code != http.StatusUnauthorized {
			t.Fatalf("GET with Impersonate-User: %d %s, want 401", code, body)
		}
	})
}
