package apiserver

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// lockFile in the data directory is held (flock) by the server using it.
const lockFile = "lock"

// ErrDataDirInUse: another process serves from the data directory.
var ErrDataDirInUse = errors.New("data directory in use")

// lockDataDir creates dir (0700) and takes its lock, writing this
// process's id in the lock file. Another server on the same directory
// would rewrite admin.kubeconfig to its own address and then wait for
// etcd's own lock for ever: it must stop before it touches anything.
// The lock goes with the process, or with release.
func lockDataDir(dir string) (release func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir %q: %w", dir, err)
	}
	path := dataDir{path: dir}.file(lockFile)
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
			return nil, fmt.Errorf("%w: %s is locked by %s (is a skiff server already running on it?)", ErrDataDirInUse, dir, holder)
		}
		return nil, fmt.Errorf("data dir %q: lock: %w", dir, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { f.Close() }, nil
}
