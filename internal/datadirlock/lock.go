// Package datadirlock takes a data directory's lock: the file "lock" in
// it, flock'ed for as long as the process (or release) holds it, with the
// holder's process id written in, so that two processes never work on one
// data directory together (a server and a second server, or a restore).
package datadirlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrInUse: another process holds the data directory.
var ErrInUse = errors.New("data directory in use")

// File is the lock's name in the data directory.
const File = "lock"

// Lock creates dir (0700) and takes its lock. A directory another
// process holds is ErrInUse, naming that process.
func Lock(dir string) (release func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir %q: %w", dir, err)
	}
	path := filepath.Join(dir, File)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data dir %q: %w", dir, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			holder := "another process"
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
				holder = "process " + strconv.Itoa(pid)
			}
			return nil, fmt.Errorf("%w: %s is locked by %s", ErrInUse, dir, holder)
		}
		return nil, fmt.Errorf("data dir %q: lock: %w", dir, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { f.Close() }, nil
}
