package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// TestLocalRuntime: auto picks the first OCI runtime on $PATH, and falls
// back to sim, loudly, when there is none.
func TestLocalRuntime(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("auto picks a real runtime only as root")
	}
	dir := t.TempDir()
	t.Setenv("PATH", dir)
	var warn strings.Builder
	if got := localRuntime(&warn, "auto"); got != "sim" || !strings.Contains(warn.String(), "SIMULATES containers") {
		t.Errorf("no runtime on PATH: %q, warning %q; want sim and a warning", got, warn.String())
	}
	for _, rt := range []string{"runc", "crun"} {
		if err := os.WriteFile(filepath.Join(dir, rt), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	warn.Reset()
	if got := localRuntime(&warn, "auto"); got != "crun" || warn.Len() != 0 {
		t.Errorf("crun and runc on PATH: %q, warning %q; want crun before runc, no warning", got, warn.String())
	}
	if got := localRuntime(&warn, "runc"); got != "runc" {
		t.Errorf("an explicit runtime is kept: %q", got)
	}
}

// TestRunParts: a part that returns ends the server, and says so unless
// the server was stopping; the parts stop before the server does.
func TestRunParts(t *testing.T) {
	var mu sync.Mutex
	var events []string
	record := func(e string) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, e)
	}
	waiter := part{"waiter", func(ctx context.Context) error { <-ctx.Done(); record("part stopped"); return nil }}
	run := func(parent context.Context, parts ...part) error {
		events = nil
		srvCtx, stopServer := context.WithCancel(context.Background())
		defer stopServer()
		srvDone := make(chan error, 1)
		go func() { <-srvCtx.Done(); record("server stopped"); srvDone <- nil }()
		return runParts(parent, srvDone, stopServer, parts)
	}
	quitter := part{"quitter", func(context.Context) error { return nil }}
	if err := run(context.Background(), waiter, quitter); err == nil || err.Error() != "quitter stopped" {
		t.Errorf("a part that returned nil: %v, want \"quitter stopped\"", err)
	}
	failer := part{"failer", func(context.Context) error { return errors.New("boom") }}
	if err := run(context.Background(), waiter, failer); err == nil || err.Error() != "failer: boom" {
		t.Errorf("a failed part: %v, want \"failer: boom\"", err)
	}
	stopped, cancel := context.WithCancel(context.Background())
	cancel() // SIGTERM: every part returns nil
	if err := run(stopped, waiter, waiter); err != nil {
		t.Errorf("shutdown: %v, want nil", err)
	}
	if want := []string{"part stopped", "part stopped", "server stopped"}; !slices.Equal(events, want) {
		t.Errorf("shutdown order %v, want %v", events, want)
	}

	// The server ending on its own stops the parts.
	events = nil
	srvDone := make(chan error, 1)
	srvDone <- errors.New("etcd failed")
	if err := runParts(context.Background(), srvDone, func() {}, []part{waiter}); err == nil || err.Error() != "etcd failed" {
		t.Errorf("the server failing: %v, want its error", err)
	}
	if !slices.Equal(events, []string{"part stopped"}) {
		t.Errorf("the server failing: %v; want the part stopped", events)
	}
}

// TestStandAgain: controllers that lose their leadership start again; any
// other end is the part's end.
func TestStandAgain(t *testing.T) {
	starts := 0
	lost := func(context.Context) error {
		starts++
		if starts < 3 {
			return errors.New("leader election lost")
		}
		return errors.New("boom")
	}
	if err := standAgain(lost)(context.Background()); err == nil || err.Error() != "boom" || starts != 3 {
		t.Errorf("after %d starts: %v; want boom after 3 (two lost leaderships stood for again)", starts, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := standAgain(func(context.Context) error { return errors.New("leader election lost") })(ctx); err == nil {
		t.Error("a stop while it ran: nil; want the start's error passed on")
	}
}
