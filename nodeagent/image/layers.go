package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

func (s *Store) layerPath(diffID v1.Hash) string {
	return s.path("layers", diffID.Hex)
}

// ensureLayer unpacks l into the store unless it holds it already, and
// returns its diff id. The layer is unpacked into a temporary directory,
// checked against its diff id, flushed to disk, and then renamed into
// place, so layers/<diff id> exists only complete.
func (s *Store) ensureLayer(ctx context.Context, l v1.Layer) (v1.Hash, error) {
	diffID, err := l.DiffID()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("diff id: %w", err)
	}
	if diffID.Algorithm != "sha256" {
		return v1.Hash{}, fmt.Errorf("diff id %q: unsupported algorithm", diffID)
	}
	unlock, err := s.layerLocks.lock(ctx, diffID.Hex)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("layer %s: %w", diffID, err)
	}
	defer unlock()

	dst := s.layerPath(diffID)
	if _, err := os.Lstat(dst); err == nil {
		return diffID, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return v1.Hash{}, fmt.Errorf("layer %s: %w", diffID, err)
	}
	if s.onUnpack != nil {
		s.onUnpack(diffID)
	}
	tmp, err := os.MkdirTemp(s.path("tmp"), "layer-")
	if err != nil {
		return v1.Hash{}, fmt.Errorf("layer %s: %w", diffID, err)
	}
	defer os.RemoveAll(tmp)
	if err := unpackVerified(ctx, tmp, l, diffID); err != nil {
		return v1.Hash{}, fmt.Errorf("layer %s: %w", diffID, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return v1.Hash{}, fmt.Errorf("layer %s: %w", diffID, err)
	}
	return diffID, nil
}

// unpackVerified unpacks l into dir, checks that its uncompressed stream
// has the digest diffID, and flushes dir's file system.
func unpackVerified(ctx context.Context, dir string, l v1.Layer, diffID v1.Hash) error {
	// MkdirTemp made dir 0700; it becomes the root of the container's
	// file system unless the layer itself has an entry for "/".
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	rc, err := l.Uncompressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	h := sha256.New()
	r := io.TeeReader(rc, h)
	if err := unpack(ctx, dir, r); err != nil {
		return err
	}
	// The tar stream may go on past its end-of-archive marker.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return fmt.Errorf("read layer: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != diffID.Hex {
		return fmt.Errorf("content has digest sha256:%s, not the diff id", got)
	}
	return syncFS(dir)
}

// syncFS flushes the file system holding dir, so that a layer renamed into
// place survives a crash with its contents.
func syncFS(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("sync %q: %w", dir, err)
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("sync %q: %w", dir, err)
	}
	return nil
}
