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
