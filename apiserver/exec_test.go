package apiserver

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	clientremotecommand "k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/apiserver/rbac"
	"skiff.dev/skiff/identity"
	"skiff.dev/skiff/nodeagent/remotecommand"
)

// fakeAgent is a node's agent endpoint that runs no containers: its exec
// prints the command and the path it was asked on, "err" on stderr, then
// stdin; with a TTY, the first size. It exits with the number of words in
// the command. It remembers the key of the client certificates it saw.
type fakeAgent struct {
	id   *identity.Identity
	addr string

	mu      sync.Mutex
	callers []ed25519.PublicKey
}

func startFakeAgent(t *testing.T) *fakeAgent {
	t.Helper()
	id, err := identity.New()
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := id.ClientCertificate("n1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := id.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	a := &fakeAgent{id: id}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(a.exec))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	a.addr = strings.TrimPrefix(srv.URL, "https://")
	return a
}

func (a *fakeAgent) exec(w http.ResponseWriter, r *http.Request) {
	if len(r.TLS.PeerCertificates) > 0 {
		if pub, ok := r.TLS.PeerCertificates[0].PublicKey.(ed25519.PublicKey); ok {
			a.mu.Lock()
			a.callers = append(a.callers, pub)
			a.mu.Unlock()
		}
	}
	opts, err := remotecommand.OptionsFromQuery(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	command := r.URL.Query()["command"]
	remotecommand.Serve(w, r, opts, func(ctx context.Context, s remotecommand.Streams) (int, error) {
		if opts.TTY {
			size := <-s.Resize
			fmt.Fprintf(s.Stdout, "tty %dx%d\r\n", size.Width, size.Height)
			return 0, nil
		}
		fmt.Fprintf(s.Stdout, "%s at %s\n", strings.Join(command, " "), r.URL.Path)
		if s.Stderr != nil {
			fmt.Fprintln(s.Stderr, "err")
		}
		if s.Stdin != nil {
			if _, err := io.Copy(s.Stdout, s.Stdin); err != nil {
				return 0, err
			}
		}
		return len(command), nil
	})
}

func (a *fakeAgent) lastCaller() ed25519.PublicKey {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.callers) == 0 {
		return nil
	}
	return a.callers[len(a.callers)-1]
}

// execAs runs command in instance name's container through the API
// server's exec subresource, as cfg's user.
func execAs(t *testing.T, cfg *rest.Config, name, query string, opts clientremotecommand.StreamOptions) error {
	t.Helper()
	u, err := url.Parse(cfg.Host + "/apis/skiff.dev/v1alpha1/namespaces/default/instances/" + name + "/exec?" + query)
	if err != nil {
		t.Fatal(err)
	}
	exec, err := clientremotecommand.NewSPDYExecutor(cfg, http.MethodPost, u)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return exec.StreamWithContext(ctx, opts)
}

type oneSize struct{ sent bool }

func (s *oneSize) Next() *clientremotecommand.TerminalSize {
	if s.sent {
		return nil
	}
	s.sent = true
	return &clientremotecommand.TerminalSize{Width: 90, Height: 30}
}

// TestExecThroughTheAgent: the exec subresource proxies the client's
// remote command session to the node's agent, as the API server's own
// client identity; picks the container as logs do; refuses what cannot
// run; is create on instances/exec for RBAC; and is audited.
func TestExecThroughTheAgent(t *testing.T) {
	ts := startPresetServer(t, rbac.PresetRestrictive)
	admin := rbacAdmin(t, ts)
	ctx := context.Background()
	agent := startFakeAgent(t)
	node := &skiffv1alpha1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Spec: skiffv1alpha1.NodeSpec{PublicKey: agent.id.PublicKeyString()}}
	if err := admin.Create(ctx, node); err != nil {
		t.Fatal(err)
	}
	node.Status.AgentEndpoint = agent.addr
	node.Status.Addresses = []skiffv1alpha1.NodeAddress{{Type: skiffv1alpha1.NodeInternalIP, Address: "127.0.0.1"}}
	if err := admin.Status().Update(ctx, node); err != nil {
		t.Fatal(err)
	}
	one := newInstance("one")
	one.Spec.NodeName = "n1"
	two := newInstance("two")
	two.Spec.NodeName = "n1"
	two.Spec.Containers = append(two.Spec.Containers, skiffv1alpha1.Container{Name: "side", Image: "busybox"})
	unbound := newInstance("unbound")
	done := newInstance("done")
	done.Spec.NodeName = "n1"
	far := newInstance("far")
	far.Spec.NodeName = "n2"
	for _, inst := range []*skiffv1alpha1.Instance{one, two, unbound, done, far} {
		if err := admin.Create(ctx, inst); err != nil {
			t.Fatal(err)
		}
	}
	done.Status.Phase = skiffv1alpha1.InstanceSucceeded
	if err := admin.Status().Update(ctx, done); err != nil {
		t.Fatal(err)
	}
	// n2's agent endpoint is a loopback port nobody listens on.
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	n2 := &skiffv1alpha1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n2"}, Spec: skiffv1alpha1.NodeSpec{PublicKey: agent.id.PublicKeyString()}}
	if err := admin.Create(ctx, n2); err != nil {
		t.Fatal(err)
	}
	n2.Status.AgentEndpoint = closed.Addr().String()
	n2.Status.Addresses = node.Status.Addresses
	if err := admin.Status().Update(ctx, n2); err != nil {
		t.Fatal(err)
	}
	main := one.Spec.Containers[0].Name

	t.Run("streams, exit code, the agent's path", func(t *testing.T) {
		var stdout, stderr strings.Builder
		err := execAs(t, ts.cfg, "one", "command=sh&command=-c&command=exit+7&stdin=true&stdout=true&stderr=true",
			clientremotecommand.StreamOptions{Stdin: strings.NewReader("hello\n"), Stdout: &stdout, Stderr: &stderr})
		var exit utilexec.ExitError
		if !errors.As(err, &exit) || exit.ExitStatus() != 3 {
			t.Errorf("error %v, want exit code 3", err)
		}
		want := fmt.Sprintf("sh -c exit 7 at /exec/default/one/%s/%s\nhello\n", one.UID, main)
		if stdout.String() != want || stderr.String() != "err\n" {
			t.Errorf("stdout %q, stderr %q; want %q and err", stdout.String(), stderr.String(), want)
		}
		if got := agent.lastCaller(); !got.Equal(ts.srv.agentCert.ID.Public()) {
			t.Errorf("the agent was called with key %x, not the API server's client key", got)
		}
	})

	t.Run("a TTY and its size", func(t *testing.T) {
		var stdout strings.Builder
		err := execAs(t, ts.cfg, "one", "command=sh&stdin=false&stdout=true&tty=true",
			clientremotecommand.StreamOptions{Stdout: &stdout, Tty: true, TerminalSizeQueue: &oneSize{}})
		if err != nil || stdout.String() != "tty 90x30\r\n" {
			t.Errorf("stdout %q, error %v", stdout.String(), err)
		}
	})

	for _, tc := range []struct{ name, instance, query, want string }{
		{"the container named", "two", "command=true&stdout=true&container=side", ""},
		{"one of several unnamed", "two", "command=true&stdout=true", "a container name must be specified for instance two, choose one of: [main side]"},
		{"no such container", "one", "command=true&stdout=true&container=nope", "container nope is not valid for instance one"},
		{"not bound", "unbound", "command=true&stdout=true", `instance "unbound" is not bound to a node yet`},
		{"finished", "done", "command=true&stdout=true", "cannot exec into a container in a completed instance; current phase is Succeeded"},
		{"an unreachable agent", "far", "command=true&stdout=true", `the agent of node "n2" is unreachable`},
		{"no command", "one", "stdout=true", "no command to run"},
		{"no stream", "one", "command=true", "at least one of stdin, stdout and stderr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := execAs(t, ts.cfg, tc.instance, tc.query, clientremotecommand.StreamOptions{Stdout: io.Discard})
			var exit utilexec.ExitError
			switch {
			case tc.want == "" && errors.As(err, &exit):
			case tc.want == "" || err == nil || !strings.Contains(err.Error(), tc.want):
				t.Errorf("error %v, want one saying %q", err, tc.want)
			}
		})
	}

	t.Run("RBAC: create on instances/exec", func(t *testing.T) {
		operator, viewer := newPersonalKey(t, ts), newPersonalKey(t, ts)
		bindClusterRole(t, admin, operator, rbac.OperatorRole)
		bindClusterRole(t, admin, viewer, rbac.ViewerRole)
		var exit utilexec.ExitError
		if err := execAs(t, operator.cfg, "one", "command=true&stdout=true", clientremotecommand.StreamOptions{Stdout: io.Discard}); !errors.As(err, &exit) {
			t.Errorf("operator's exec: %v, want it run (exit code 1)", err)
		}
		err := execAs(t, viewer.cfg, "one", "command=true&stdout=true", clientremotecommand.StreamOptions{Stdout: io.Discard})
		if err == nil || !strings.Contains(err.Error(), `cannot create resource "instances/exec"`) {
			t.Errorf("viewer's exec: %v, want forbidden", err)
		}
	})

	t.Run("audited", func(t *testing.T) {
		eventually(t, 20*time.Second, "an audit record of the exec", func() bool {
			data, _ := os.ReadFile(ts.srv.dir.file(auditLogFile))
			for _, line := range strings.Split(string(data), "\n") {
				if strings.Contains(line, `"subresource":"exec"`) && strings.Contains(line, `"verb":"create"`) &&
					strings.Contains(line, "command=sh") && strings.Contains(line, `"name":"one"`) {
					return true
				}
			}
			return false
		})
	})

	t.Run("only an upgraded POST is served", func(t *testing.T) {
		hc, err := rest.HTTPClientFor(ts.cfg)
		if err != nil {
			t.Fatal(err)
		}
		u := ts.cfg.Host + "/apis/skiff.dev/v1alpha1/namespaces/default/instances/one/exec?command=true&stdout=true"
		for method, want := range map[string]int{http.MethodGet: http.StatusMethodNotAllowed, http.MethodPost: http.StatusBadRequest} {
			req, err := http.NewRequest(method, u, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("%s exec without an upgrade: %s %s, want %d", method, resp.Status, body, want)
			}
		}
	})
}
