package shim

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Executable returns the program to start as a shim. A skiff built by
// `make build` carries cmd/skiff-shim inside it and writes it once into dir
// (named by its digest, so an upgrade never runs an old shim); any other
// build starts itself, which RunIfAsked turns into a shim.
func Executable(dir string) (string, error) {
	if len(embedded) == 0 {
		self, err := os.Executable()
		if err != nil {
			return "", fmt.Errorf("shim: find this executable: %w", err)
		}
		return self, nil
	}
	sum := sha256.Sum256(embedded)
	path := filepath.Join(dir, "skiff-shim-"+hex.EncodeToString(sum[:6]))
	if data, err := os.ReadFile(path); err == nil && bytes.Equal(data, embedded) {
		return path, nil
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("shim: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("shim: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".skiff-shim-*")
	if err != nil {
		return "", fmt.Errorf("shim: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(embedded); err != nil {
		tmp.Close()
		return "", fmt.Errorf("shim: %w", err)
	}
	if err := tmp.Chmod(0o700); err != nil {
		tmp.Close()
		return "", fmt.Errorf("shim: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("shim: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("shim: %w", err)
	}
	return path, nil
}
