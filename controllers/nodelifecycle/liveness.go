package nodelifecycle

import (
	"context"
	"fmt"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/gossip"
)

// Liveness is the Lease signal: when a node was last seen alive.
//
// LastSeen returns when node was last seen alive, on this process's clock
// (the zero time if it never was), and for how long that sighting vouches
// for it. It is called from reconcilers, so it must be safe for
// concurrent use and must not block on the network (read a cache). An
// error means the signal cannot tell now; the controller then acts on
// nothing and tries again.
type Liveness interface {
	LastSeen(ctx context.Context, node string) (Sighting, error)
}

// Sighting is one sight of a node alive.
type Sighting struct {
	// At is when it was seen, on this process's clock.
	At time.Time
	// For is how long the sight vouches for the node (the Lease's
	// leaseDurationSeconds); zero leaves it to the grace period.
	For time.Duration
}

// Members is the gossip signal: the control plane's member's view of the
// others (gossip.Membership).
type Members interface {
	Member(name string) (gossip.Member, bool)
}

// Leases sees a node alive when its agent renews its Lease,
// skiff-node-lease/NAME.
//
// A renewal counts at the moment this process first sees the Lease's
// renewTime change, not at the renewTime itself (as Kubernetes' node
// lifecycle controller does): the renewTime is written on the agent's
// clock, which may be skewed, and after this process starts, or after the
// apiserver was down, every Lease looks old although no agent failed. So a
// node gets a full grace period from the first time a Lease is read.
type Leases struct {
	reader client.Reader
	now    func() time.Time

	mu   sync.Mutex
	seen map[string]renewal
}

var _ Liveness = (*Leases)(nil)

// renewal is a Lease's renewTime and when this process first saw it.
type renewal struct {
	renewed, observed time.Time
}

// NewLeases reads Leases through r, which should be a cache (the
// manager's client).
func NewLeases(r client.Reader) *Leases {
	return &Leases{reader: r, now: time.Now, seen: map[string]renewal{}}
}

// LastSeen returns when the node's Lease was last seen renewed, and its
// leaseDurationSeconds; the zero time if the node has no Lease or never
// renewed it.
func (l *Leases) LastSeen(ctx context.Context, node string) (Sighting, error) {
	var lease coordinationv1.Lease
	key := client.ObjectKey{Namespace: skiffv1alpha1.NodeLeaseNamespace, Name: node}
	err := l.reader.Get(ctx, key, &lease)
	if apierrors.IsNotFound(err) {
		l.forget(node)
		return Sighting{}, nil
	}
	if err != nil {
		return Sighting{}, fmt.Errorf("lease %q of node %q: %w", key, node, err)
	}
	renewed := lease.Spec.RenewTime
	if renewed == nil {
		renewed = lease.Spec.AcquireTime
	}
	if renewed == nil {
		return Sighting{}, nil
	}
	var valid time.Duration
	if d := lease.Spec.LeaseDurationSeconds; d != nil && *d > 0 {
		valid = time.Duration(*d) * time.Second
	}
	return Sighting{At: l.observe(node, renewed.Time), For: valid}, nil
}

// observe records renewed for node and returns when it was first seen.
func (l *Leases) observe(node string, renewed time.Time) time.Time {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.seen[node]
	if !ok || !r.renewed.Equal(renewed) {
		r = renewal{renewed: renewed, observed: now}
		l.seen[node] = r
	}
	return r.observed
}

func (l *Leases) forget(node string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.seen, node)
}
