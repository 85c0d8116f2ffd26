package remotecommand

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/apimachinery/pkg/util/httpstream/spdy"
	remotecommandconsts "k8s.io/apimachinery/pkg/util/remotecommand"
	"k8s.io/klog/v2"

	"skiff.dev/skiff/nodeagent/runtime"
)

// Protocols are the subprotocols served: v4 is the first with exit codes,
// and what client-go picks over SPDY (its v5 adds nothing there).
var Protocols = []string{remotecommandconsts.StreamProtocolV4Name}

const (
	// streamCreationTimeout bounds the wait for the client's streams.
	streamCreationTimeout = remotecommandconsts.DefaultStreamCreationTimeout
	// idleTimeout closes a connection with no frames for this long, as
	// the kubelet's default --streaming-connection-idle-timeout does.
	idleTimeout = 4 * time.Hour
	// maxStreams is one of each type: error, stdin, stdout, stderr, resize.
	maxStreams = 5
)

// Options are the streams a client asked for.
type Options struct {
	Stdin, Stdout, Stderr, TTY bool
}

// OptionsFromQuery reads the stdin, stdout, stderr and tty parameters
// ("true" or "1", as pods/exec takes them). With a TTY, stderr is the
// terminal's output too, so no stderr stream is asked for.
func OptionsFromQuery(q url.Values) (Options, error) {
	var o Options
	for _, p := range []struct {
		name string
		into *bool
	}{{"stdin", &o.Stdin}, {"stdout", &o.Stdout}, {"stderr", &o.Stderr}, {"tty", &o.TTY}} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return Options{}, fmt.Errorf("parameter %s=%q: not a boolean", p.name, v)
		}
		*p.into = b
	}
	if o.TTY {
		o.Stderr = false
	}
	if !o.Stdin && !o.Stdout && !o.Stderr {
		return Options{}, fmt.Errorf("at least one of stdin, stdout and stderr must be true")
	}
	return o, nil
}

// Streams are the client's streams, as Options asked for them (nil
// otherwise).
type Streams struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Resize carries the client's terminal sizes, with a TTY; it closes
	// when the client closes its resize stream.
	Resize <-chan runtime.TerminalSize
}

// Run runs the process with the client's streams until it ends or ctx
// does (the client went away), and returns its exit code; an error means
// it could not be run.
type Run func(ctx context.Context, s Streams) (exitCode int, err error)

// Serve upgrades the request, waits for the client's streams, runs run
// with them, and reports its end on the error stream. It returns when the
// connection is closed. A request that cannot be upgraded is answered
// with an HTTP error.
func Serve(w http.ResponseWriter, r *http.Request, opts Options, run Run) {
	if _, err := httpstream.Handshake(r, w, Protocols); err != nil {
		return // Handshake answered
	}
	// The handler runs in the connection's reader and must not block it:
	// a client opens at most one stream of each type, and one that opens
	// more has them refused.
	arrived := make(chan streamAndReply, maxStreams)
	conn := spdy.NewResponseUpgrader().UpgradeResponse(w, r, func(s httpstream.Stream, replySent <-chan struct{}) error {
		select {
		case arrived <- streamAndReply{s, replySent}:
			return nil
		default:
			return fmt.Errorf("too many streams: %q refused", s.Headers().Get(corev1.StreamType))
		}
	})
	if conn == nil {
		return // UpgradeResponse answered
	}
	// Closing: cancel, close the connection (which ends every stream),
	// then wait for the goroutines here.
	var wg sync.WaitGroup
	defer wg.Wait()
	defer conn.Close()
	conn.SetIdleTimeout(idleTimeout)

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-conn.CloseChan():
			cancel()
		case <-ctx.Done():
		}
	}()
	s, err := waitForStreams(ctx, arrived, opts)
	if err != nil {
		klog.V(2).InfoS("exec: no streams", "err", err)
		return
	}
	var resize chan runtime.TerminalSize
	if s.resize != nil {
		resize = make(chan runtime.TerminalSize)
		wg.Add(1)
		go func() {
			defer wg.Done()
			decodeResizes(ctx, s.resize, resize)
		}()
	}
	code, err := run(ctx, s.streams(resize))
	for _, out := range []httpstream.Stream{s.stdout, s.stderr} {
		if out != nil {
			_ = out.Close()
		}
	}
	if err := writeStatus(s.errors, exitStatus(code, err)); err != nil && ctx.Err() == nil {
		klog.V(2).InfoS("exec: report the end", "err", err)
	}
}

// exitStatus is how a run ended, as the error stream tells it.
func exitStatus(code int, err error) metav1.Status {
	switch {
	case err != nil:
		return apierrors.NewInternalError(fmt.Errorf("error executing command in container: %w", err)).Status()
	case code < 0 || code > 255:
		return apierrors.NewInternalError(fmt.Errorf("the command ended with no exit code known (%d)", code)).Status()
	case code != 0:
		return metav1.Status{
			Status:  metav1.StatusFailure,
			Reason:  remotecommandconsts.NonZeroExitCodeReason,
			Message: fmt.Sprintf("command terminated with non-zero exit code %d", code),
			Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{
				{Type: remotecommandconsts.ExitCodeCauseType, Message: strconv.Itoa(code)},
			}},
		}
	}
	return metav1.Status{Status: metav1.StatusSuccess}
}

func writeStatus(stream httpstream.Stream, st metav1.Status) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if _, err := stream.Write(data); err != nil {
		return err
	}
	return stream.Close()
}

// decodeResizes sends each size the client writes on its resize stream
// to sizes, until the stream or ctx ends; then it closes sizes.
func decodeResizes(ctx context.Context, stream io.Reader, sizes chan<- runtime.TerminalSize) {
	defer close(sizes)
	dec := json.NewDecoder(stream)
	for {
		var size struct{ Width, Height uint16 }
		if err := dec.Decode(&size); err != nil {
			return
		}
		select {
		case sizes <- runtime.TerminalSize{Width: size.Width, Height: size.Height}:
		case <-ctx.Done():
			return
		}
	}
}
