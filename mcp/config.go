package mcp

import (
	"errors"
	"fmt"
	"strings"
)

// Config configures a Bridge. Every field maps to a flag of `skiff mcp`.
type Config struct {
	// ReadOnly lists and allows only tools that read (--read-only).
	ReadOnly bool
	// DisableDestructive hides delete_workload and refuses scaling to
	// zero (--disable-destructive).
	DisableDestructive bool
	// DenyKinds are kinds no tool reads or writes (--deny-kinds), e.g.
	// Node or Event; matched without regard to case.
	DenyKinds []string
	// MaxResponseBytes caps every tool result, as sent (--max-response-bytes).
	MaxResponseBytes int
	// Namespace is the namespace of tools called without one.
	Namespace string
	// Stateless says the HTTP transport keeps no sessions (--stateless):
	// the client cannot be asked to confirm unless it speaks 2026-07-28.
	Stateless bool
}

// FieldManager is the field manager of every write the bridge makes.
const FieldManager = "skiff-mcp"

// DefaultMaxResponseBytes is 64 KiB: about 16,000 tokens.
const DefaultMaxResponseBytes = 64 << 10

// minResponseBytes leaves room for a page of a few summaries and the notes.
const minResponseBytes = 4 << 10

// DefaultConfig returns the configuration `skiff mcp` starts with.
func DefaultConfig() Config {
	return Config{MaxResponseBytes: DefaultMaxResponseBytes, Namespace: "default"}
}

// Validate reports the first invalid field, named by its flag.
func (c *Config) Validate() error {
	if c.MaxResponseBytes < minResponseBytes {
		return fmt.Errorf("--max-response-bytes %d: must be at least %d", c.MaxResponseBytes, minResponseBytes)
	}
	if c.Namespace == "" {
		return errors.New("--namespace: must not be empty")
	}
	for _, k := range c.DenyKinds {
		if strings.TrimSpace(k) == "" {
			return errors.New("--deny-kinds: empty kind")
		}
	}
	return nil
}

// denied reports whether kind may not be touched.
func (c *Config) denied(kind string) bool {
	for _, k := range c.DenyKinds {
		if strings.EqualFold(strings.TrimSpace(k), kind) {
			return true
		}
	}
	return false
}
