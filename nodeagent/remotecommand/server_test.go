package remotecommand_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"k8s.io/client-go/rest"
	clientremotecommand "k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"

	"skiff.dev/skiff/nodeagent/remotecommand"
)

// serve is a server whose process is run, taking the options from the
// query as the agent does.
func serve(t *testing.T, run remotecommand.Run) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		opts, err := remotecommand.OptionsFromQuery(r.URL.Query())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		remotecommand.Serve(w, r, opts, run)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// execute runs a client-go SPDY executor against base with query q.
func execute(t *testing.T, base, q string, opts clientremotecommand.StreamOptions) error {
	t.Helper()
	u, err := url.Parse(base + "/exec?" + q)
	if err != nil {
		t.Fatal(err)
	}
	exec, err := clientremotecommand.NewSPDYExecutor(&rest.Config{Host: base}, http.MethodPost, u)
	if err != nil {
		t.Fatal(err)
	}
	return exec.StreamWithContext(context.Background(), opts)
}

func TestExitCodeAndOutput(t *testing.T) {
	base := serve(t, func(_ context.Context, s remotecommand.Streams) (int, error) {
		fmt.Fprintln(s.Stdout, "out")
		fmt.Fprintln(s.Stderr, "err")
		return 7, nil
	})
	var stdout, stderr strings.Builder
	err := execute(t, base, "stdout=true&stderr=true", clientremotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr})
	var exit utilexec.ExitError
	if !errors.As(err, &exit) || exit.ExitStatus() != 7 {
		t.Fatalf("error %v, want an exit error with code 7", err)
	}
	if stdout.String() != "out\n" || stderr.String() != "err\n" {
		t.Errorf("stdout %q, stderr %q", stdout.String(), stderr.String())
	}
}

func TestStdinToTheEnd(t *testing.T) {
	base := serve(t, func(_ context.Context, s remotecommand.Streams) (int, error) {
		_, err := io.Copy(s.Stdout, s.Stdin)
		return 0, err
	})
	var stdout strings.Builder
	err := execute(t, base, "stdin=true&stdout=true&stderr=true", clientremotecommand.StreamOptions{
		Stdin: strings.NewReader("hello\n"), Stdout: &stdout, Stderr: io.Discard,
	})
	if err != nil || stdout.String() != "hello\n" {
		t.Errorf("stdout %q, error %v; want hello and none", stdout.String(), err)
	}
}

// sizes is a TerminalSizeQueue of fixed sizes.
type sizes []clientremotecommand.TerminalSize

func (q *sizes) Next() *clientremotecommand.TerminalSize {
	if len(*q) == 0 {
		return nil
	}
	next := (*q)[0]
	*q = (*q)[1:]
	return &next
}

func TestTTYAndResizes(t *testing.T) {
	base := serve(t, func(_ context.Context, s remotecommand.Streams) (int, error) {
		if s.Stderr != nil || s.Resize == nil {
			return 0, fmt.Errorf("with a TTY: stderr %v, resize %v", s.Stderr, s.Resize)
		}
		for range 2 {
			size := <-s.Resize
			fmt.Fprintf(s.Stdout, "%dx%d\n", size.Width, size.Height)
		}
		return 0, nil
	})
	var stdout strings.Builder
	queue := &sizes{{Width: 80, Height: 24}, {Width: 132, Height: 43}}
	err := execute(t, base, "stdout=true&stderr=true&tty=true", clientremotecommand.StreamOptions{
		Stdout: &stdout, Stderr: io.Discard, Tty: true, TerminalSizeQueue: queue,
	})
	if err != nil || stdout.String() != "80x24\n132x43\n" {
		t.Errorf("stdout %q, error %v; want both sizes in order", stdout.String(), err)
	}
}

func TestRunErrorReachesTheClient(t *testing.T) {
	base := serve(t, func(context.Context, remotecommand.Streams) (int, error) {
		return 0, errors.New(`container "x" is gone`)
	})
	err := execute(t, base, "stdout=true", clientremotecommand.StreamOptions{Stdout: io.Discard})
	var exit utilexec.ExitError
	if err == nil || errors.As(err, &exit) || !strings.Contains(err.Error(), `container "x" is gone`) {
		t.Errorf("error %v, want the run's error and no exit code", err)
	}
}

func TestNoUpgradeWithoutAProtocol(t *testing.T) {
	base := serve(t, func(context.Context, remotecommand.Streams) (int, error) { return 0, nil })
	resp, err := http.Post(base+"/exec?stdout=true", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("status %d, want 400", resp.StatusCode)
	}
}

func TestOptionsFromQuery(t *testing.T) {
	for _, tc := range []struct {
		query   string
		want    remotecommand.Options
		wantErr bool
	}{
		{"stdout=true&stderr=true", remotecommand.Options{Stdout: true, Stderr: true}, false},
		{"stdin=1&stdout=1", remotecommand.Options{Stdin: true, Stdout: true}, false},
		{"stdout=true&stderr=true&tty=true", remotecommand.Options{Stdout: true, TTY: true}, false},
		{"stdin=false", remotecommand.Options{}, true},
		{"", remotecommand.Options{}, true},
		{"stdout=yes", remotecommand.Options{}, true},
	} {
		q, _ := url.ParseQuery(tc.query)
		got, err := remotecommand.OptionsFromQuery(q)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("%q: %+v, %v; want %+v (error %v)", tc.query, got, err, tc.want, tc.wantErr)
		}
	}
}
