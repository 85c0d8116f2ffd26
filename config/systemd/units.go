// Package systemd holds the systemd units that run skiff, the .service
// files beside this one, so that `skiff install` writes the very units
// shipped here (and tested by systemd_test.go) rather than a copy.
package systemd

import _ "embed"

// ServerUnit is skiff-server.service: `skiff server` on this machine.
//
//go:embed skiff-server.service
var ServerUnit string

// AgentUnit is skiff-agent.service: `skiff agent` joining a server.
//
//go:embed skiff-agent.service
var AgentUnit string

// Binary is where the units expect skiff; `skiff install --bin-dir`
// rewrites it.
const Binary = "/usr/local/bin/skiff"
