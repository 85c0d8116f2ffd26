package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// newNetNS creates a network namespace and pins it by bind-mounting it
// on path, as `ip netns add` does under /run/netns.
func newNetNS(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("network namespace %s: %w", path, err)
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		// The thread is never unlocked: it ends with this goroutine,
		// inside the new namespace, and no other goroutine runs on it.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		self := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		if err := unix.Mount(self, path, "none", unix.MS_BIND, ""); err != nil {
			errc <- fmt.Errorf("bind mount: %w", err)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		os.Remove(path)
		return fmt.Errorf("network namespace %s: %w", path, err)
	}
	return nil
}

// isNetNS reports whether a namespace is pinned on path: after a reboot
// the file stays and the mount does not.
func isNetNS(path string) bool {
	var fs unix.Statfs_t
	return unix.Statfs(path, &fs) == nil && fs.Type == unix.NSFS_MAGIC
}

// removeNetNS unpins a namespace newNetNS made; the kernel frees it once
// no process is left in it. A missing path is not an error.
func removeNetNS(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("network namespace %s: unmount: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("network namespace %s: %w", path, err)
	}
	return nil
}

// inNetNS runs fn on a thread inside the network namespace at path (the
// current one when path is empty). Sockets fn opens and processes it
// starts live in that namespace; fn must not hand work to other
// goroutines that expect it.
func inNetNS(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	target, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("network namespace %s: %w", path, err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter network namespace %s: %w", path, err)
			return
		}
		fnErr := fn()
		if err := netns.Set(orig); err != nil {
			// The thread stays locked, so it ends with this goroutine
			// rather than serve others in the wrong namespace.
			errc <- errors.Join(fnErr, fmt.Errorf("leave network namespace %s: %w", path, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- fnErr
	}()
	return <-errc
}

// InNetNS is inNetNS for other packages: the agent reads the node's
// addresses in its host namespace, tests reach Instances from it.
func InNetNS(path string, fn func() error) error { return inNetNS(path, fn) }

// Listen opens a listener inside the namespace at path: what it accepts
// arrives there.
func Listen(path, netw, addr string) (net.Listener, error) {
	var ln net.Listener
	err := inNetNS(path, func() error {
		var err error
		ln, err = net.Listen(netw, addr)
		return err
	})
	return ln, err
}

// DialContext returns d's DialContext with connections made inside the
// namespace at path, for an http.Transport.
func DialContext(path string, d *net.Dialer) func(ctx context.Context, netw, addr string) (net.Conn, error) {
	return func(ctx context.Context, netw, addr string) (net.Conn, error) {
		var conn net.Conn
		err := inNetNS(path, func() error {
			var err error
			conn, err = d.DialContext(ctx, netw, addr)
			return err
		})
		return conn, err
	}
}

// ResolveNetNS turns a name of `ip netns` into its path under /run/netns;
// paths (anything with a slash) are returned as they are.
func ResolveNetNS(name string) string {
	if name == "" || filepath.IsAbs(name) || strings.Contains(name, "/") {
		return name
	}
	return filepath.Join("/run/netns", name)
}
