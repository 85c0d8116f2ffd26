package main

import (
	"fmt"
	"net"
	"os"
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

// ready sends READY=1; without NOTIFY_SOCKET it does nothing.
func (n readyNotifier) ready() error {
	if n.socket == "" {
		return nil
	}
	// A name starting with @ is an abstract socket; package net reads it so.
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.socket, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.socket, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("READY=1")); err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.socket, err)
	}
	return nil
}
