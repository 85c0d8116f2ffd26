package serverlist

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

func leaseScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := coordinationv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

func fakeClient(t *testing.T, funcs interceptor.Funcs, leases ...coordinationv1.Lease) client.WithWatch {
	t.Helper()
	b := fake.NewClientBuilder().WithScheme(leaseScheme(t)).WithInterceptorFuncs(funcs)
	for i := range leases {
		b = b.WithObjects(&leases[i])
	}
	return b.Build()
}

func serve(h http.Handler, method, path string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, "https://skiff"+path, nil))
	return w
}

func TestHandler(t *testing.T) {
	unlabelled := serverLease("c", "https://10.0.0.3:6443", t0, 30)
	unlabelled.Labels = nil
	elsewhere := serverLease("d", "https://10.0.0.4:6443", t0, 30)
	elsewhere.Namespace = skiffv1alpha1.NodeLeaseNamespace
	c := fakeClient(t, interceptor.Funcs{},
		serverLease("a", "https://10.0.0.1:6443", t0.Add(-time.Second), 30),
		serverLease("b", "https://10.0.0.2:6443", t0.Add(-time.Minute), 30), // expired
		unlabelled, elsewhere)
	h := NewHandler(c)
	h.now = func() time.Time { return t0 }

	w := serve(h, http.MethodGet, skiffv1alpha1.ServersPath)
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("GET: %d %q %s", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	var got List
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatalf("GET: %v in %s", err, w.Body)
	}
	if want := []string{"https://10.0.0.1:6443"}; !slices.Equal(got.Servers, want) {
		t.Fatalf("servers %v, want %v", got.Servers, want)
	}

	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		if w := serve(h, m, skiffv1alpha1.ServersPath); w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != http.MethodGet {
			t.Errorf("%s: %d, Allow %q; want 405, Allow GET", m, w.Code, w.Header().Get("Allow"))
		}
	}
	if w := serve(h, http.MethodGet, skiffv1alpha1.ServersPath+"/x"); w.Code != http.StatusNotFound {
		t.Errorf("GET below the path: %d, want 404", w.Code)
	}
}

func TestHandlerNoneIsEmptyList(t *testing.T) {
	w := serve(NewHandler(fakeClient(t, interceptor.Funcs{})), http.MethodGet, skiffv1alpha1.ServersPath)
	if body := w.Body.String(); w.Code != http.StatusOK || body != "{\"servers\":[]}\n" {
		t.Fatalf("GET with no Leases: %d %q, want 200 {\"servers\":[]}", w.Code, body)
	}
}

func TestHandlerListFails(t *testing.T) {
	c := fakeClient(t, interceptor.Funcs{List: func(context.Context, client.WithWatch, client.ObjectList, ...client.ListOption) error {
		return errors.New("etcd is away")
	}})
	if w := serve(NewHandler(c), http.MethodGet, skiffv1alpha1.ServersPath); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("GET with a failing list: %d %s, want 503", w.Code, w.Body)
	}
}
