package logs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
)

// Options select what Read writes, as the log subresource's query does.
type Options struct {
	// Follow keeps reading new entries while the container runs.
	Follow bool
	// TailLines, when not negative, starts at that many entries from the end.
	TailLines int64
	// Since skips entries written before it.
	Since time.Time
	// Timestamps prefixes each line with its RFC 3339 time.
	Timestamps bool
	// LimitBytes, when positive, stops after that many bytes.
	LimitBytes int64
}

// PollInterval is how often a followed log is checked for new entries.
const PollInterval = 100 * time.Millisecond

// Read writes the entries of the log at path (its rotated files first) to
// w as the container wrote them. With opts.Follow it goes on writing new
// entries until ctx ends or running reports false and the log is drained.
func Read(ctx context.Context, path string, opts Options, w io.Writer, running func() bool) error {
	return ignoreLimit(read(ctx, path, opts, w, running))
}

func read(ctx context.Context, path string, opts Options, w io.Writer, running func() bool) error {
	lw := &limitWriter{w: w, limited: opts.LimitBytes > 0, left: opts.LimitBytes}
	cur, older, err := openAll(path)
	if err != nil {
		return err
	}
	defer func() {
		if cur != nil {
			cur.Close()
		}
	}()
	var tail *ring
	if opts.TailLines >= 0 {
		tail = &ring{max: int(opts.TailLines)}
	}
	emit := func(e entry) error {
		if !opts.Since.IsZero() && e.time.Before(opts.Since) {
			return nil
		}
		if tail != nil {
			tail.add(e)
			return nil
		}
		return write(lw, e, opts.Timestamps)
	}
	// Read every rotated file whole, then the current one up to its end.
	for _, f := range older {
		err := readFile(f, emit)
		f.Close()
		if err != nil {
			return err
		}
	}
	if cur == nil {
		return flushTail(lw, tail, opts.Timestamps)
	}
	br := bufio.NewReaderSize(cur, maxLine+128)
	var pending []byte
	drain := func() error {
		for {
			line, err := br.ReadSlice('\n')
			if errors.Is(err, bufio.ErrBufferFull) {
				pending = append(pending, line...)
				continue
			}
			if err != nil { // EOF: keep a half-written entry for later
				pending = append(pending, line...)
				return nil
			}
			if len(pending) > 0 {
				line = append(pending, line...)
				pending = nil
			}
			e, ok := parse(line)
			if !ok {
				continue
			}
			if err := emit(e); err != nil {
				return err
			}
		}
	}
	if err := drain(); err != nil {
		return err
	}
	if err := flushTail(lw, tail, opts.Timestamps); err != nil {
		return err
	}
	tail = nil
	if !opts.Follow {
		return nil
	}
	tick := time.NewTicker(PollInterval)
	defer tick.Stop()
	for {
		stopped := running != nil && !running()
		if err := drain(); err != nil {
			return err
		}
		// The writer rotated: finish the old file, go on with the new one.
		if moved(cur, path) {
			next, err := os.Open(path)
			if err == nil {
				if err := drain(); err != nil {
					return err
				}
				cur.Close()
				cur, pending = next, nil
				br.Reset(cur)
				continue
			}
		}
		if stopped {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// rotated lists path's rotated files, oldest first.
func rotated(path string) []string {
	var files []string
	for i := 1; ; i++ {
		p := path + "." + strconv.Itoa(i)
		if _, err := os.Stat(p); err != nil {
			break
		}
		files = append([]string{p}, files...)
	}
	return files
}

func moved(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	if err != nil {
		return false
	}
	return !os.SameFile(a, b)
}

// openAll opens the current log (nil if there is none yet) and its rotated
// files, oldest first, as one consistent set: opened newest first, and
// again if the writer rotated meanwhile (a file would be read twice or
// not at all).
func openAll(path string) (cur *os.File, older []*os.File, err error) {
	for attempt := 1; ; attempt++ {
		cur, err = os.Open(path)
		if errors.Is(err, os.ErrNotExist) {
			cur = nil
		} else if err != nil {
			return nil, nil, fmt.Errorf("log: %w", err)
		}
		older = nil
		names := rotated(path)
		for i := len(names) - 1; i >= 0; i-- {
			f, err := os.Open(names[i])
			if err != nil {
				continue // rotated away meanwhile: caught below
			}
			older = append([]*os.File{f}, older...)
		}
		// After three tries the writer rotates faster than this can open
		// files: read what is open.
		if cur == nil || attempt == 3 || !moved(cur, path) {
			return cur, older, nil
		}
		cur.Close()
		for _, f := range older {
			f.Close()
		}
	}
}

func readFile(f *os.File, emit func(entry) error) error {
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 2*maxLine)
	for sc.Scan() {
		if e, ok := parse(sc.Bytes()); ok {
			if err := emit(e); err != nil {
				return err
			}
		}
	}
	return sc.Err()
}

type entry struct {
	time    time.Time
	stamp   string
	partial bool
	content []byte
}

// parse reads "TIMESTAMP STREAM TAG CONTENT"; a line not in that form is
// skipped.
func parse(line []byte) (entry, bool) {
	line = bytes.TrimSuffix(line, []byte{'\n'})
	stamp, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return entry{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(stamp))
	if err != nil {
		return entry{}, false
	}
	_, rest, ok = bytes.Cut(rest, []byte{' '}) // stream
	if !ok {
		return entry{}, false
	}
	tag, content, _ := bytes.Cut(rest, []byte{' '})
	return entry{time: t, stamp: string(stamp), partial: string(tag) == "P", content: bytes.Clone(content)}, true
}

func write(w io.Writer, e entry, timestamps bool) error {
	var b []byte
	if timestamps {
		b = append(b, e.stamp...)
		b = append(b, ' ')
	}
	b = append(b, e.content...)
	if !e.partial {
		b = append(b, '\n')
	}
	_, err := w.Write(b)
	return err
}

// ring keeps the last max entries.
type ring struct {
	max     int
	entries []entry
	next    int // where the next entry goes once full
}

func (r *ring) add(e entry) {
	switch {
	case r.max == 0:
	case len(r.entries) < r.max:
		r.entries = append(r.entries, e)
	default:
		r.entries[r.next] = e
		r.next = (r.next + 1) % r.max
	}
}

func flushTail(w io.Writer, r *ring, timestamps bool) error {
	if r == nil {
		return nil
	}
	for i := range r.entries {
		if err := write(w, r.entries[(r.next+i)%len(r.entries)], timestamps); err != nil {
			return err
		}
	}
	return nil
}

var errLimit = errors.New("log byte limit reached")

func ignoreLimit(err error) error {
	if errors.Is(err, errLimit) {
		return nil
	}
	return err
}

// limitWriter stops after left bytes when limited.
type limitWriter struct {
	w       io.Writer
	limited bool
	left    int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if !l.limited {
		return l.w.Write(p)
	}
	if int64(len(p)) >= l.left {
		n, err := l.w.Write(p[:l.left])
		l.left = 0
		if err == nil {
			err = errLimit
		}
		return n, err
	}
	l.left -= int64(len(p))
	return l.w.Write(p)
}
