package nodeagent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	clientremotecommand "k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/identity"
	"skiff.dev/skiff/nodeagent/runtime"
)

// echoExec is the simulated runtime with an exec that shows what it got:
// its args on stdout, "err" on stderr, then stdin copied to stdout; with
// a TTY, the first size it is given. It exits with the number of args.
type echoExec struct{ *runtime.Sim }

func (e echoExec) Exec(ctx context.Context, id string, opts runtime.ExecOptions) (int, error) {
	if _, err := e.Sim.Exec(ctx, id, opts); err != nil {
		return 0, err
	}
	if opts.TTY {
		select {
		case size := <-opts.Resize:
			fmt.Fprintf(opts.Stdout, "tty %dx%d\r\n", size.Width, size.Height)
			return 0, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	fmt.Fprintln(opts.Stdout, strings.Join(opts.Args, " "))
	if opts.Stderr != nil {
		fmt.Fprintln(opts.Stderr, "err")
	}
	if opts.Stdin != nil {
		if _, err := io.Copy(opts.Stdout, opts.Stdin); err != nil {
			return 0, err
		}
	}
	return len(opts.Args), nil
}

// execAgent is an agent's endpoint serving one Instance, uid u1, whose
// container main runs and whose container done has stopped.
type execAgent struct {
	url string
	// apiserver is the API server's client identity, which the agent trusts.
	apiserver *identity.Identity
}

func startExecAgent(t *testing.T) *execAgent {
	t.Helper()
	apiserverID, err := identity.New()
	if err != nil {
		t.Fatal(err)
	}
	inst := &skiffv1alpha1.Instance{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "u1"},
		Spec: skiffv1alpha1.InstanceSpec{NodeName: "n1", InstanceTemplateSpec: skiffv1alpha1.InstanceTemplateSpec{
			Containers: []skiffv1alpha1.Container{{Name: "main", Image: "x"}, {Name: "done", Image: "x"}},
		}},
	}
	scheme := k8sruntime.NewScheme()
	if err := skiffv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	sim := runtime.NewSim(runtime.SimConfig{})
	ctx := context.Background()
	for _, c := range []string{"main", "done"} {
		if err := sim.Create(ctx, containerID(inst, c), runtime.Spec{}); err != nil {
			t.Fatal(err)
		}
		if err := sim.Start(ctx, containerID(inst, c)); err != nil {
			t.Fatal(err)
		}
	}
	if err := sim.Kill(ctx, containerID(inst, "done"), 9); err != nil {
		t.Fatal(err)
	}
	s := &server{
		rt: echoExec{sim}, instances: fake.NewClientBuilder().WithScheme(scheme).WithObjects(inst).Build(),
		apiserverKey: apiserverID.Public(), metrics: newMetrics(),
	}
	srv := httptest.NewUnstartedServer(s.handler())
	srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &execAgent{url: srv.URL, apiserver: apiserverID}
}

// exec runs command in the Instance's container through the agent's exec
// endpoint as id (nil: no client certificate).
func (a *execAgent) exec(t *testing.T, id *identity.Identity, path, query string, opts clientremotecommand.StreamOptions) error {
	t.Helper()
	cfg := &rest.Config{Host: a.url, TLSClientConfig: rest.TLSClientConfig{Insecure: true}}
	if id != nil {
		cert, err := id.ClientCertificate("tester", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		key, err := id.KeyPEM()
		if err != nil {
			t.Fatal(err)
		}
		cfg.CertData, cfg.KeyData = cert, key
	}
	u, err := url.Parse(a.url + path + "?" + query)
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

// sizeOnce is a terminal that has one size.
type sizeOnce struct{ sent bool }

func (s *sizeOnce) Next() *clientremotecommand.TerminalSize {
	if s.sent {
		return nil
	}
	s.sent = true
	return &clientremotecommand.TerminalSize{Width: 100, Height: 40}
}

func TestExecEndpoint(t *testing.T) {
	a := startExecAgent(t)
	const main = "/exec/default/web/u1/main"

	t.Run("streams and the exit code", func(t *testing.T) {
		var stdout, stderr strings.Builder
		err := a.exec(t, a.apiserver, main, "command=sh&command=-c&command=exit+3&stdin=true&stdout=true&stderr=true",
			clientremotecommand.StreamOptions{Stdin: strings.NewReader("hello\n"), Stdout: &stdout, Stderr: &stderr})
		var exit utilexec.ExitError
		if !errors.As(err, &exit) || exit.ExitStatus() != 3 {
			t.Errorf("error %v, want exit code 3", err)
		}
		if stdout.String() != "sh -c exit 3\nhello\n" || stderr.String() != "err\n" {
			t.Errorf("stdout %q, stderr %q", stdout.String(), stderr.String())
		}
	})

	t.Run("a TTY and its size", func(t *testing.T) {
		var stdout strings.Builder
		err := a.exec(t, a.apiserver, main, "command=tty&stdout=true&stderr=true&tty=true",
			clientremotecommand.StreamOptions{Stdout: &stdout, Stderr: io.Discard, Tty: true, TerminalSizeQueue: &sizeOnce{}})
		if err != nil || stdout.String() != "tty 100x40\r\n" {
			t.Errorf("stdout %q, error %v", stdout.String(), err)
		}
	})

	t.Run("only the apiserver's certificate", func(t *testing.T) {
		stranger, err := identity.New()
		if err != nil {
			t.Fatal(err)
		}
		for who, id := range map[string]*identity.Identity{"another key": stranger, "no certificate": nil} {
			err := a.exec(t, id, main, "command=true&stdout=true", clientremotecommand.StreamOptions{Stdout: io.Discard})
			if err == nil || !strings.Contains(err.Error(), "only the apiserver may exec") {
				t.Errorf("%s: error %v, want a refusal", who, err)
			}
		}
	})

	for _, tc := range []struct{ name, path, query, want string }{
		{"no command", main, "stdout=true", "no command to run"},
		{"no stream", main, "command=true", "at least one of stdin, stdout and stderr"},
		{"another uid", "/exec/default/web/u2/main", "command=true&stdout=true", "uid u2"},
		{"another instance", "/exec/default/db/u1/main", "command=true&stdout=true", "not on this node"},
		{"no such container", "/exec/default/web/u1/side", "command=true&stdout=true", `no container "side"`},
		{"a stopped container", "/exec/default/web/u1/done", "command=true&stdout=true", `container "done" of instance default/web is not running (stopped)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := a.exec(t, a.apiserver, tc.path, tc.query, clientremotecommand.StreamOptions{Stdout: io.Discard})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}
