package apiserver

import (
	"errors"
	"fmt"

	"skiff.dev/skiff/internal/datadirlock"
)

// ErrDataDirInUse: another process serves from the data directory.
var ErrDataDirInUse = datadirlock.ErrInUse

// lockDataDir creates dir (0700) and takes its lock, writing this
// process's id in the lock file. Another server on the same directory
// would rewrite admin.kubeconfig to its own address and then wait for
// etcd's own lock for ever: it must stop before it touches anything.
// The lock goes with the process, or with release.
func lockDataDir(dir string) (release func(), err error) {
	release, err = datadirlock.Lock(dir)
	if errors.Is(err, datadirlock.ErrInUse) {
		return nil, fmt.Errorf("%w (is a skiff server already running on it?)", err)
	}
	return release, err
}
