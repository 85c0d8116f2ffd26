package main

import (
	"fmt"
	"os"

	"github.com/coreos/go-systemd/v22/daemon"
)

// readyNotifier tells systemd (a Type=notify unit) that skiff server is
// ready. It takes NOTIFY_SOCKET out of the process's environment when it
// is made, so that nothing else in the process can say it first: the
// library's API server sends READY=1 as soon as it has started its
// post-start hooks, before they finish, and so before the first join
// token's record exists (an agent started on that READY was refused).
type readyNotifier struct {
	socket string
}

// takeNotifySocket makes the process's readyNotifier; call it before the
// API server starts.
func takeNotifySocket() readyNotifier {
	n := readyNotifier{socket: os.Getenv("NOTIFY_SOCKET")}
	os.Unsetenv("NOTIFY_SOCKET")
	return n
}

// ready sends READY=1; without NOTIFY_SOCKET it does nothing. Called once
// the server is ready, it puts the socket back only for go-systemd's
// notification, which takes it out again: nothing said after that moment
// can be early, and the in-process agent's own READY stays unsent, as a
// unit has one main process to speak for it.
func (n readyNotifier) ready() error {
	if n.socket == "" {
		return nil
	}
	if err := os.Setenv("NOTIFY_SOCKET", n.socket); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	if _, err := daemon.SdNotify(true, daemon.SdNotifyReady); err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.socket, err)
	}
	return nil
}
