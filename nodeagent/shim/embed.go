//go:build embedshim

package shim

import _ "embed"

// embedded is cmd/skiff-shim, built by `make build` into bin/ here first.
//
//go:embed bin/skiff-shim
var embedded []byte
