package nodeagent

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// leaseKeeper renews one node's Lease, skiff-node-lease/NAME. It keeps
// the Lease it last wrote, so a renewal is one update; it reads the Lease
// again only after a conflict.
type leaseKeeper struct {
	client   client.Client
	node     string
	interval time.Duration
	lease    *coordinationv1.Lease
}

func (k *leaseKeeper) renew(ctx context.Context) error {
	now := metav1.NewMicroTime(time.Now())
	seconds := int32(max(1, (3*k.interval).Round(time.Second)/time.Second))
	key := client.ObjectKey{Namespace: skiffv1alpha1.NodeLeaseNamespace, Name: k.node}
	if k.lease == nil {
		var lease coordinationv1.Lease
		err := k.client.Get(ctx, key, &lease)
		if apierrors.IsNotFound(err) {
			lease = coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name},
				Spec: coordinationv1.LeaseSpec{
					HolderIdentity: ptr.To(k.node), LeaseDurationSeconds: ptr.To(seconds),
					AcquireTime: &now, RenewTime: &now,
				},
			}
			if err := k.client.Create(ctx, &lease); err != nil {
				return fmt.Errorf("lease %s: %w", key, err)
			}
			k.lease = &lease
			return nil
		}
		if err != nil {
			return fmt.Errorf("lease %s: %w", key, err)
		}
		k.lease = &lease
	}
	k.lease.Spec.HolderIdentity = ptr.To(k.node)
	k.lease.Spec.LeaseDurationSeconds = ptr.To(seconds)
	k.lease.Spec.RenewTime = &now
	if err := k.client.Update(ctx, k.lease); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			k.lease = nil // read it again next time
		}
		return fmt.Errorf("lease %s: %w", key, err)
	}
	return nil
}

// leaseRenewer is the agent's heartbeat to the API server, a Runnable of
// its manager. While gossip is healthy it renews every slow interval (the
// Lease is the fallback signal, gossip the heartbeat), saying so in the
// Lease's duration (3 intervals); when gossip turns unhealthy it renews at
// once and then every fast interval, so the control plane sees a short,
// fresh Lease and keeps the node Ready though gossip calls it dead.
type leaseRenewer struct {
	keeper     *leaseKeeper
	fast, slow time.Duration
	// gossipHealthy is nil with gossip off.
	gossipHealthy func() bool
	// renewed runs after each successful renewal.
	renewed func(ctx context.Context)
	// failed runs after each failed one.
	failed func(ctx context.Context, err error)
}

// healthPoll is how often the renewer looks at gossip's health between
// slow renewals.
const healthPoll = 250 * time.Millisecond

func (l *leaseRenewer) Start(ctx context.Context) error {
	for {
		healthy := l.gossipHealthy != nil && l.gossipHealthy()
		interval := l.fast
		if healthy {
			interval = l.slow
		}
		l.keeper.interval = interval
		if err := l.keeper.renew(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			l.failed(ctx, err)
		} else {
			l.renewed(ctx)
		}
		if !l.wait(ctx, interval, healthy) {
			return nil
		}
	}
}

// wait waits for interval, or less when gossip was healthy and no longer
// is; it returns false when ctx ends.
func (l *leaseRenewer) wait(ctx context.Context, interval time.Duration, healthy bool) bool {
	timer := time.NewTimer(interval)
	defer timer.Stop()
	poll := time.NewTicker(healthPoll)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-timer.C:
			return true
		case <-poll.C:
			if healthy && !l.gossipHealthy() {
				return true
			}
		}
	}
}
