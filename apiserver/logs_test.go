package apiserver

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// getter serves one object.
type getter struct{ obj runtime.Object }

func (g getter) Get(context.Context, string, *metav1.GetOptions) (runtime.Object, error) {
	return g.obj.DeepCopyObject(), nil
}

// TestLogsDialOnlyTheNodesAgent points a node's agent endpoint at what a
// hostile node would (a foreign host, junk, a loopback port that is no
// agent, a TLS server with another key) and checks that the API server
// dials nothing outside the node's own addresses and tells the caller
// only that the agent is unreachable.
func TestLogsDialOnlyTheNodesAgent(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("secret")) }))
	defer plain.Close()
	stranger := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("secret")) }))
	defer stranger.Close()
	inst := &skiffv1alpha1.Instance{ObjectMeta: metav1.ObjectMeta{Name: "i", Namespace: "default"},
		Spec: skiffv1alpha1.InstanceSpec{NodeName: "n1", InstanceTemplateSpec: skiffv1alpha1.InstanceTemplateSpec{Containers: []skiffv1alpha1.Container{{Name: "c", Image: "x"}}}}}
	for _, tc := range []struct {
		name, endpoint string
		// dials: the endpoint passes the check and the stream is opened.
		dials bool
	}{
		{"foreign host", "192.0.2.7:10250", false},
		{"junk", "http://[::1", false},
		{"a host name", "example.com:443", false},
		{"loopback port with nothing", closedAddr, true},
		{"loopback port that speaks plain HTTP", strings.TrimPrefix(plain.URL, "http://"), true},
		{"loopback TLS server with another key", strings.TrimPrefix(stranger.URL, "https://"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			node := &skiffv1alpha1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"},
				Spec: skiffv1alpha1.NodeSpec{PublicKey: base64.StdEncoding.EncodeToString(pub)},
				Status: skiffv1alpha1.NodeStatus{AgentEndpoint: tc.endpoint,
					Addresses: []skiffv1alpha1.NodeAddress{{Type: skiffv1alpha1.NodeInternalIP, Address: "10.0.0.1"}}}}
			r := &logREST{instances: getter{inst}, nodes: getter{node}, cert: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &tls.Certificate{}, nil }}
			obj, err := r.Get(t.Context(), "i", &skiffv1alpha1.InstanceLogOptions{})
			if !tc.dials {
				wantUnreachable(t, err)
				return
			}
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			rc, _, _, err := obj.(*agentStream).InputStream(t.Context(), "", "")
			if rc != nil {
				rc.Close()
			}
			wantUnreachable(t, err)
		})
	}
}

func wantUnreachable(t *testing.T, err error) {
	t.Helper()
	if !apierrors.IsServiceUnavailable(err) {
		t.Fatalf("error %v, want 503 Service Unavailable", err)
	}
	if msg := err.Error(); msg != `the agent of node "n1" is unreachable` {
		t.Errorf("error %q tells more than that the agent is unreachable", msg)
	}
}
