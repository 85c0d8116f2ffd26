//go:build !embedshim

package shim

// embedded is empty without the embedshim tag: skiff starts itself as the
// shim.
var embedded []byte
