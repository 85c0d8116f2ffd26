// Package xdg says where skiff keeps state: /var/lib/skiff for root, the
// XDG data home (~/.local/share/skiff) for everyone else.
package xdg

import (
	"os"
	"path/filepath"
)

// DataDir is the default data directory of one part of skiff ("server",
// "agent").
func DataDir(part string) string {
	if os.Geteuid() == 0 {
		return filepath.Join("/var/lib/skiff", part)
	}
	base := os.Getenv("XDG_DATA_HOME")
	if base == "" {
		home, _ := os.UserHomeDir()
		base = filepath.Join(home, ".local", "share")
	}
	return filepath.Join(base, "skiff", part)
}
