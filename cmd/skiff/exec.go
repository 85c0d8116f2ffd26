package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// execRequest is one exec: where, and which streams.
type execRequest struct {
	namespace, instance, container string
	command                        []string
	stdin, tty                     bool
}

func newExecCommand() *cobra.Command {
	var cf clientFlags
	var req execRequest
	cmd := &cobra.Command{
		Use:   "exec INSTANCE [-c CONTAINER] [-i] [-t] -- COMMAND [ARG...]",
		Short: "Run a command in a container of an Instance",
		Long: "Run a command in a running container of an Instance, through the API server's exec subresource\n" +
			"(create on instances/exec). skiff exec exits with the command's exit code.",
		Example: "  skiff exec web-7d9f8c6b5d-x2x4q -- ls /\n" +
			"  echo hello | skiff exec -i web-7d9f8c6b5d-x2x4q -- cat\n" +
			"  skiff exec -it -c sidecar web-7d9f8c6b5d-x2x4q -- sh",
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if req.instance, req.command, err = execArgs(args, cmd.ArgsLenAtDash()); err != nil {
				return err
			}
			cfg, ns, err := cf.config()
			if err != nil {
				return err
			}
			req.namespace = ns
			return runExec(cmd.Context(), cfg, req, os.Stdin, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cf.add(cmd)
	fs := cmd.Flags()
	fs.StringVarP(&req.container, "container", "c", "", "container name (may be omitted when the Instance has one)")
	fs.BoolVarP(&req.stdin, "stdin", "i", false, "pass standard input to the command")
	fs.BoolVarP(&req.tty, "tty", "t", false, "run the command on a terminal (raw mode here when standard input is one, with -i)")
	return cmd
}

// execArgs splits the arguments into the Instance and the command: the
// command follows "--" (or the Instance, without one).
func execArgs(args []string, dash int) (instance string, command []string, err error) {
	switch {
	case dash > 1:
		return "", nil, fmt.Errorf("exec takes one Instance before --, got %q", args[:dash])
	case dash == 0:
		return "", nil, errors.New("exec needs an Instance before --")
	case len(args) < 2:
		return "", nil, errors.New("exec needs a command to run: skiff exec INSTANCE -- COMMAND [ARG...]")
	}
	return args[0], args[1:], nil
}

// execURL is the exec subresource's URL for req, with pods/exec's query.
func execURL(host string, req execRequest) (*url.URL, error) {
	q := url.Values{"command": req.command}
	q.Set("stdin", fmt.Sprint(req.stdin))
	q.Set("stdout", "true")
	q.Set("stderr", fmt.Sprint(!req.tty)) // a terminal has one output
	q.Set("tty", fmt.Sprint(req.tty))
	if req.container != "" {
		q.Set("container", req.container)
	}
	return url.Parse(strings.TrimSuffix(host, "/") + "/apis/" + skiffv1alpha1.SchemeGroupVersion.String() +
		"/namespaces/" + url.PathEscape(req.namespace) + "/instances/" + url.PathEscape(req.instance) + "/exec?" + q.Encode())
}

// runExec streams req over SPDY. With a TTY and -i on a terminal, the
// terminal is raw for the session (keys, ^C included, go to the command)
// and restored after; its size follows SIGWINCH.
func runExec(ctx context.Context, cfg *rest.Config, req execRequest, in *os.File, out, errOut io.Writer) error {
	u, err := execURL(cfg.Host, req)
	if err != nil {
		return err
	}
	exec, err := remotecommand.NewSPDYExecutor(cfg, http.MethodPost, u)
	if err != nil {
		return err
	}
	opts := remotecommand.StreamOptions{Stdout: out, Stderr: errOut, Tty: req.tty}
	if req.stdin {
		opts.Stdin = in
	}
	if req.tty {
		opts.Stderr = nil
		if f, ok := out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			sizes := watchSize(ctx, int(f.Fd()))
			defer sizes.stop()
			opts.TerminalSizeQueue = sizes
		}
		if req.stdin && term.IsTerminal(int(in.Fd())) {
			old, err := term.MakeRaw(int(in.Fd()))
			if err != nil {
				return fmt.Errorf("terminal: %w", err)
			}
			defer func() { _ = term.Restore(int(in.Fd()), old) }()
		}
	}
	err = exec.StreamWithContext(ctx, opts)
	if err != nil {
		return fmt.Errorf("exec in %s/%s: %w", req.namespace, req.instance, err)
	}
	return nil
}

// sizeQueue is the local terminal's size: once at the start, then at
// each SIGWINCH, until stop.
type sizeQueue struct {
	sizes chan remotecommand.TerminalSize
	stop  func()
}

func watchSize(ctx context.Context, fd int) *sizeQueue {
	ctx, cancel := context.WithCancel(ctx)
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	q := &sizeQueue{sizes: make(chan remotecommand.TerminalSize, 1)}
	done := make(chan struct{})
	q.stop = func() {
		cancel()
		<-done
	}
	go func() {
		defer close(done)
		defer signal.Stop(winch)
		defer close(q.sizes)
		sendSizes(ctx, func() (int, int, error) { return term.GetSize(fd) }, winch, q.sizes)
	}()
	return q
}

// sendSizes sends the size now and at each change signal, skipping a
// size that did not change, until ctx ends.
func sendSizes(ctx context.Context, size func() (w, h int, err error), changed <-chan os.Signal, out chan<- remotecommand.TerminalSize) {
	var last remotecommand.TerminalSize
	for {
		if w, h, err := size(); err == nil {
			next := remotecommand.TerminalSize{Width: uint16(w), Height: uint16(h)}
			if next != last {
				select {
				case out <- next:
					last = next
				case <-ctx.Done():
					return
				}
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}

// Next is the next size; nil once the session is over.
func (q *sizeQueue) Next() *remotecommand.TerminalSize {
	size, ok := <-q.sizes
	if !ok {
		return nil
	}
	return &size
}
