package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
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
// the server was stopping; the other parts and the server are waited for.
func TestRunParts(t *testing.T) {
	waiter := part{"waiter", func(ctx context.Context) error { <-ctx.Done(); return nil }}
	run := func(parent context.Context, parts ...part) error {
		ctx, cancel := context.WithCancel(parent)
		defer cancel()
		srvDone := make(chan error, 1)
		go func() { <-ctx.Done(); srvDone <- nil }()
		return runParts(ctx, cancel, srvDone, parts)
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
}
