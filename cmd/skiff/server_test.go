package main

import (
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
