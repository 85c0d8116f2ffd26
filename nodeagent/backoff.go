package nodeagent

import (
	"time"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// Backoff is the crash-loop back-off: the first restart waits Base, each
// further one twice as long, up to Max.
type Backoff struct {
	Base, Max time.Duration
}

// DefaultBackoff is the kubelet's: 10 s doubling to 5 min.
var DefaultBackoff = Backoff{Base: 10 * time.Second, Max: 5 * time.Minute}

// Delay is the wait before restart number restarts+1.
func (b Backoff) Delay(restarts int32) time.Duration {
	d := b.Base
	for i := int32(0); i < restarts && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

// shouldRestart applies the restart policy to a container that exited.
func shouldRestart(policy skiffv1alpha1.RestartPolicy, exitCode int) bool {
	switch policy {
	case skiffv1alpha1.RestartPolicyNever:
		return false
	case skiffv1alpha1.RestartPolicyOnFailure:
		return exitCode != 0
	default: // Always, and the default
		return true
	}
}

// restartAt is when a container that exited at finished, after restarts
// earlier restarts, may start again.
func (b Backoff) restartAt(finished time.Time, restarts int32) time.Time {
	return finished.Add(b.Delay(restarts))
}
