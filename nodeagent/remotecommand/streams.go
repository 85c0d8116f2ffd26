package remotecommand

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"

	"skiff.dev/skiff/nodeagent/runtime"
)

// streamAndReply is a stream the client opened, and a channel that closes
// once the server's reply to it is sent.
type streamAndReply struct {
	httpstream.Stream
	replySent <-chan struct{}
}

// clientStreams are the streams of one exec, by type.
type clientStreams struct {
	errors, stdin, stdout, stderr, resize httpstream.Stream
}

// expected counts the streams a client opens for opts: the error stream,
// one per standard stream asked for, and resize with a TTY.
func expected(opts Options) int {
	n := 1
	for _, asked := range []bool{opts.Stdin, opts.Stdout, opts.Stderr, opts.TTY} {
		if asked {
			n++
		}
	}
	return n
}

// waitForStreams collects the client's streams until every one it was to
// open is open and replied to, or the creation timeout passes.
func waitForStreams(ctx context.Context, arrived <-chan streamAndReply, opts Options) (*clientStreams, error) {
	expired := time.NewTimer(streamCreationTimeout)
	defer expired.Stop()
	s := &clientStreams{}
	// The replies' channels, as one: a stream counts once replied to.
	replied := make(chan struct{}, maxStreams)
	var wg sync.WaitGroup
	defer wg.Wait()
	received := 0
	for received < expected(opts) {
		select {
		case st := <-arrived:
			if err := s.add(st.Stream); err != nil {
				return nil, err
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-st.replySent // closed once sent, always
				replied <- struct{}{}
			}()
		case <-replied:
			received++
		case <-expired.C:
			return nil, fmt.Errorf("timed out waiting for the client to create its streams")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if s.errors == nil {
		return nil, fmt.Errorf("the client opened no error stream")
	}
	return s, nil
}

// add files st under its type; a type opened twice or unknown is an error.
func (s *clientStreams) add(st httpstream.Stream) error {
	typ := st.Headers().Get(corev1.StreamType)
	slot := map[string]*httpstream.Stream{
		corev1.StreamTypeError: &s.errors, corev1.StreamTypeStdin: &s.stdin, corev1.StreamTypeStdout: &s.stdout,
		corev1.StreamTypeStderr: &s.stderr, corev1.StreamTypeResize: &s.resize,
	}[typ]
	if slot == nil {
		return fmt.Errorf("unexpected stream type %q", typ)
	}
	if *slot != nil {
		return fmt.Errorf("a second %s stream", typ)
	}
	*slot = st
	return nil
}

// streams are the exec's streams as the process takes them.
func (s *clientStreams) streams(resize <-chan runtime.TerminalSize) Streams {
	var out Streams
	if s.stdin != nil {
		out.Stdin = s.stdin
	}
	if s.stdout != nil {
		out.Stdout = s.stdout
	}
	if s.stderr != nil {
		out.Stderr = s.stderr
	}
	if resize != nil {
		out.Resize = resize
	}
	return out
}
