package image

import (
	"errors"
	"net"

	"github.com/google/go-containerregistry/pkg/name"
)

// PullPolicy says when Ensure asks an image's registry, as Kubernetes'
// imagePullPolicy does. The zero value is IfNotPresent.
type PullPolicy int

const (
	// IfNotPresent pulls only an image the store does not hold.
	IfNotPresent PullPolicy = iota
	// Always asks the registry which digest the reference names now and
	// pulls it unless the store holds that digest already; an unreachable
	// registry fails, even when the store holds the image.
	Always
	// Never uses the store's image and fails with ErrNeverPull without it.
	Never
)

// ReservedRegistry is the registry host of images imported into the store
// (make run's skiff.local/busybox:latest). It is never contacted, whatever
// the policy: its images are used as IfNotPresent would, and one the store
// lacks fails with ErrNotImported.
const ReservedRegistry = "skiff.local"

var (
	// ErrNeverPull is the error of a missing image with policy Never.
	ErrNeverPull = errors.New("not present with pull policy of Never")
	// ErrNotImported is the error of a missing image of ReservedRegistry.
	ErrNotImported = errors.New("not imported: " + ReservedRegistry + " images come only from the agent's images directory and are never pulled")
)

// PullOptions say how Ensure may get an image. The zero value pulls
// anonymously with policy IfNotPresent.
type PullOptions struct {
	// Policy says when to ask the registry.
	Policy PullPolicy
	// Keyring holds the credentials to pull with: those whose registry
	// matches the image's are tried in turn, most specific first. With
	// none (or a nil Keyring), the pull is anonymous.
	Keyring *Keyring
}

// step is what Ensure does for a reference.
type step int

const (
	useStored   step = iota // the store's image, without asking the registry
	fetch                   // ask the registry, and pull what the store lacks
	failNever               // ErrNeverPull
	failMissing             // ErrNotImported
)

// plan decides what Ensure does for an image of a registry under policy,
// given whether the store holds it.
func plan(policy PullPolicy, reserved, stored bool) step {
	switch {
	case stored && (policy != Always || reserved):
		return useStored
	case stored:
		return fetch
	case policy == Never:
		return failNever
	case reserved:
		return failMissing
	default:
		return fetch
	}
}

// reserved reports whether ref is an image of ReservedRegistry (on any
// port).
func reserved(ref name.Reference) bool {
	host := ref.Context().RegistryStr()
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return host == ReservedRegistry
}
