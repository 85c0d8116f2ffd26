package main

import (
	"context"
	"os"
	"slices"
	"syscall"
	"testing"

	"k8s.io/client-go/tools/remotecommand"
)

func TestExecArgs(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		dash     int
		instance string
		command  []string
		wantErr  bool
	}{
		{[]string{"web", "ls", "-l"}, 1, "web", []string{"ls", "-l"}, false},
		{[]string{"web", "ls"}, -1, "web", []string{"ls"}, false},
		{[]string{"web", "extra", "ls"}, 2, "", nil, true},
		{[]string{"ls"}, 0, "", nil, true},
	} {
		instance, command, err := execArgs(tc.args, tc.dash)
		if (err != nil) != tc.wantErr || instance != tc.instance || !slices.Equal(command, tc.command) {
			t.Errorf("execArgs(%q, %d) = %q, %q, %v", tc.args, tc.dash, instance, command, err)
		}
	}
}

func TestExecURL(t *testing.T) {
	for _, tc := range []struct {
		req  execRequest
		want string
	}{
		{
			execRequest{namespace: "default", instance: "web", command: []string{"sh", "-c", "echo hi"}},
			"https://h:6443/apis/skiff.dev/v1alpha1/namespaces/default/instances/web/exec?command=sh&command=-c&command=echo+hi&stderr=true&stdin=false&stdout=true&tty=false",
		},
		{
			execRequest{namespace: "prod", instance: "db", container: "side", command: []string{"sh"}, stdin: true, tty: true},
			"https://h:6443/apis/skiff.dev/v1alpha1/namespaces/prod/instances/db/exec?command=sh&container=side&stderr=false&stdin=true&stdout=true&tty=true",
		},
	} {
		u, err := execURL("https://h:6443/", tc.req)
		if err != nil || u.String() != tc.want {
			t.Errorf("execURL(%+v) = %v, %v; want %s", tc.req, u, err, tc.want)
		}
	}
}

// TestSendSizes: the size at the start, then after each change signal
// that changed it.
func TestSendSizes(t *testing.T) {
	sizes := [][2]int{{80, 24}, {80, 24}, {120, 40}}
	next := 0
	size := func() (int, int, error) {
		s := sizes[min(next, len(sizes)-1)]
		next++
		return s[0], s[1], nil
	}
	changed := make(chan os.Signal, 2)
	changed <- syscall.SIGWINCH
	changed <- syscall.SIGWINCH
	out := make(chan remotecommand.TerminalSize)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		sendSizes(ctx, size, changed, out)
	}()
	for _, want := range []remotecommand.TerminalSize{{Width: 80, Height: 24}, {Width: 120, Height: 40}} {
		if got := <-out; got != want {
			t.Errorf("size %+v, want %+v", got, want)
		}
	}
	cancel()
	<-done
}
