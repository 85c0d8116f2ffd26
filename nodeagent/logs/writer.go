// Package logs writes and reads container logs in the CRI file format the
// kubelet uses: one entry per line, "TIMESTAMP STREAM TAG CONTENT", where
// TIMESTAMP is RFC 3339 with nanoseconds, STREAM is stdout or stderr and TAG
// is F for a full line or P for a part of a longer one. Files rotate by size:
// container.log is the newest, container.log.1 the one before, and so on.
package logs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"
)

// Streams a container writes.
const (
	Stdout = "stdout"
	Stderr = "stderr"
)

// maxLine is the longest content one entry holds; longer lines are split
// into partial entries.
const maxLine = 16 * 1024

// Writer appends entries to a log file and rotates it by size. It is safe
// for concurrent use by one goroutine per stream.
type Writer struct {
	path     string
	maxSize  int64
	maxFiles int
	now      func() time.Time

	mu   sync.Mutex
	f    *os.File
	size int64
	buf  []byte
}

// DefaultMaxSize and DefaultMaxFiles bound a container's log to about
// 50 MiB on disk, as the kubelet's defaults do.
const (
	DefaultMaxSize  = 10 << 20
	DefaultMaxFiles = 5
)

// NewWriter opens path for appending. maxSize is the size at which the file
// rotates; maxFiles counts the files kept, the current one included.
func NewWriter(path string, maxSize int64, maxFiles int) (*Writer, error) {
	if maxSize <= 0 || maxFiles < 1 {
		return nil, fmt.Errorf("log %s: max size %d and max files %d must be positive", path, maxSize, maxFiles)
	}
	w := &Writer{path: path, maxSize: maxSize, maxFiles: maxFiles, now: time.Now}
	if err := w.open(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *Writer) open() error {
	f, err := os.OpenFile(w.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("open log: %w", err)
	}
	w.f, w.size = f, fi.Size()
	return nil
}

// Copy writes what r yields as entries of stream until r ends.
func (w *Writer) Copy(stream string, r io.Reader) error {
	br := bufio.NewReaderSize(r, maxLine)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			full := line[len(line)-1] == '\n'
			if full {
				line = line[:len(line)-1]
			}
			if werr := w.entry(stream, full || err == io.EOF, line); werr != nil {
				return werr
			}
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF):
			return nil
		default:
			return fmt.Errorf("read %s: %w", stream, err)
		}
	}
}

func (w *Writer) entry(stream string, full bool, content []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	tag := byte('P')
	if full {
		tag = 'F'
	}
	b := w.buf[:0]
	b = w.now().UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, ' ')
	b = append(b, stream...)
	b = append(b, ' ', tag, ' ')
	b = append(b, content...)
	b = append(b, '\n')
	w.buf = b
	if w.size > 0 && w.size+int64(len(b)) > w.maxSize {
		if err := w.rotate(); err != nil {
			return err
		}
	}
	n, err := w.f.Write(b)
	w.size += int64(n)
	if err != nil {
		return fmt.Errorf("write log: %w", err)
	}
	return nil
}

// rotate shifts path.N-1 to path.N, ..., path to path.1, and reopens path.
func (w *Writer) rotate() error {
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("rotate log: %w", err)
	}
	last := w.maxFiles - 1
	if last == 0 {
		if err := os.Truncate(w.path, 0); err != nil {
			return fmt.Errorf("rotate log: %w", err)
		}
		return w.open()
	}
	_ = os.Remove(w.path + "." + strconv.Itoa(last))
	for i := last - 1; i >= 1; i-- {
		if err := os.Rename(w.path+"."+strconv.Itoa(i), w.path+"."+strconv.Itoa(i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rotate log: %w", err)
		}
	}
	if err := os.Rename(w.path, w.path+".1"); err != nil {
		return fmt.Errorf("rotate log: %w", err)
	}
	return w.open()
}

// Close closes the file.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.f.Close()
}

// Retire moves the log at path and its rotated files to previous (and
// previous.1, ...), replacing what previous held: the log of a container's
// run before its restart, as `logs --previous` reads it.
//
// An empty log is left alone: a start that failed before the container wrote
// anything must not replace the log of the run that crashed.
func Retire(path, previous string) error {
	if fi, err := os.Stat(path); errors.Is(err, os.ErrNotExist) || err == nil && fi.Size() == 0 && len(rotated(path)) == 0 {
		return nil
	}
	for _, p := range append(rotated(previous), previous) {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("retire log: %w", err)
		}
	}
	for i := 1; ; i++ {
		from := path + "." + strconv.Itoa(i)
		if err := os.Rename(from, previous+"."+strconv.Itoa(i)); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				break
			}
			return fmt.Errorf("retire log: %w", err)
		}
	}
	if err := os.Rename(path, previous); err != nil {
		return fmt.Errorf("retire log: %w", err)
	}
	return nil
}
