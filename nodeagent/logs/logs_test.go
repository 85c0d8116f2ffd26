package logs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"skiff.dev/skiff/internal/syncbuf"
)

// clock returns 1s-apart times from a fixed start.
func clock() func() time.Time {
	t := time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC)
	return func() time.Time { t = t.Add(time.Second); return t }
}

func newWriter(t *testing.T, maxSize int64, maxFiles int) (*Writer, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "container.log")
	w, err := NewWriter(path, maxSize, maxFiles)
	if err != nil {
		t.Fatal(err)
	}
	w.now = clock()
	t.Cleanup(func() { w.Close() })
	return w, path
}

func TestWriterFormat(t *testing.T) {
	w, path := newWriter(t, DefaultMaxSize, DefaultMaxFiles)
	long := strings.Repeat("x", maxLine+10)
	if err := w.Copy(Stdout, strings.NewReader("hello\n"+long+"\nno newline")); err != nil {
		t.Fatal(err)
	}
	if err := w.Copy(Stderr, strings.NewReader("oops\n")); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	want := []string{
		"2026-11-27T05:00:01Z stdout F hello",
		"2026-11-27T05:00:02Z stdout P " + long[:maxLine],
		"2026-11-27T05:00:03Z stdout F " + long[maxLine:],
		"2026-11-27T05:00:04Z stdout F no newline",
		"2026-11-27T05:00:05Z stderr F oops",
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), data)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d:\n got %.80q\nwant %.80q", i, lines[i], want[i])
		}
	}
}

func TestWriterRotates(t *testing.T) {
	w, path := newWriter(t, 200, 3)
	for i := range 20 {
		if err := w.Copy(Stdout, strings.NewReader(fmt.Sprintf("line %02d\n", i))); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{path, path + ".1", path + ".2"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > 200 {
			t.Errorf("%s is %d bytes, over the 200 limit", p, fi.Size())
		}
	}
	if _, err := os.Stat(path + ".3"); err == nil {
		t.Error("a fourth file is kept with max files 3")
	}
	// What is left reads back in order and ends with the last line.
	var out bytes.Buffer
	if err := Read(context.Background(), path, Options{TailLines: -1}, &out, nil); err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSpace(out.String()), "\n")
	if got[len(got)-1] != "line 19" {
		t.Fatalf("last line %q", got[len(got)-1])
	}
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("out of order: %q", got)
		}
	}
}

func TestRead(t *testing.T) {
	w, path := newWriter(t, 150, 4) // rotates: reading spans files
	for i := 1; i <= 6; i++ {
		if err := w.Copy(Stdout, strings.NewReader(fmt.Sprintf("line %d\n", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Copy(Stderr, strings.NewReader("part")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"all", Options{TailLines: -1}, "line 1\nline 2\nline 3\nline 4\nline 5\nline 6\npart\n"},
		{"tail", Options{TailLines: 2}, "line 6\npart\n"},
		{"tail zero", Options{TailLines: 0}, ""},
		{"since", Options{TailLines: -1, Since: time.Date(2026, 11, 27, 5, 0, 5, 0, time.UTC)}, "line 5\nline 6\npart\n"},
		{"timestamps", Options{TailLines: 1, Timestamps: true}, "2026-11-27T05:00:07Z part\n"},
		{"limit", Options{TailLines: -1, LimitBytes: 10}, "line 1\nlin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := Read(context.Background(), path, tc.opts, &out, nil); err != nil {
				t.Fatal(err)
			}
			if out.String() != tc.want {
				t.Errorf("got %q, want %q", out.String(), tc.want)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		var out bytes.Buffer
		if err := Read(context.Background(), path+".missing", Options{TailLines: -1}, &out, nil); err != nil || out.Len() != 0 {
			t.Errorf("reading a log not written yet: %q, %v", out.String(), err)
		}
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFollow follows a log across rotations and stops once the container
// has stopped and every entry is out.
func TestFollow(t *testing.T) {
	w, path := newWriter(t, 100, 3)
	if err := w.Copy(Stdout, strings.NewReader("first\n")); err != nil {
		t.Fatal(err)
	}
	var running atomic.Bool
	running.Store(true)
	out := &syncbuf.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- Read(context.Background(), path, Options{Follow: true, TailLines: -1}, out, running.Load)
	}()
	waitFor(t, "the first line", func() bool { return out.String() == "first\n" })
	var want strings.Builder
	want.WriteString("first\n")
	for i := range 10 { // about 40 bytes an entry: rotates several times
		line := fmt.Sprintf("follow %d\n", i)
		want.WriteString(line)
		if err := w.Copy(Stdout, strings.NewReader(line)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, line, func() bool { return strings.HasSuffix(out.String(), line) })
	}
	if err := w.Copy(Stdout, strings.NewReader("last\n")); err != nil {
		t.Fatal(err)
	}
	want.WriteString("last\n")
	running.Store(false)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("follow did not end after the container stopped")
	}
	if out.String() != want.String() {
		t.Errorf("followed:\n%s\nwant:\n%s", out.String(), want.String())
	}
}

func TestFollowEndsWithContext(t *testing.T) {
	_, path := newWriter(t, DefaultMaxSize, DefaultMaxFiles)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Read(ctx, path, Options{Follow: true, TailLines: -1}, io.Discard, func() bool { return true })
	}()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("follow did not end with its context")
	}
}

func TestRetire(t *testing.T) {
	w, path := newWriter(t, 60, 3)
	for i := range 4 {
		if err := w.Copy(Stdout, strings.NewReader(fmt.Sprintf("run1 %d\n", i))); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	previous := filepath.Join(filepath.Dir(path), "previous.log")
	if err := os.WriteFile(previous+".2", []byte("stale\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Retire(path, previous); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the current log is still there: %v", err)
	}
	var out bytes.Buffer
	if err := Read(context.Background(), previous, Options{TailLines: -1}, &out, nil); err != nil {
		t.Fatal(err)
	}
	if want := "run1 1\nrun1 2\nrun1 3\n"; out.String() != want { // three files kept, no stale one
		t.Errorf("previous log %q, want %q", out.String(), want)
	}
	if err := Retire(path, previous); err != nil {
		t.Errorf("retiring a log that is not there: %v", err)
	}
}
