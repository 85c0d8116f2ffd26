package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// sweepInterval is how often containers are checked for Instances that
// are gone.
const sweepInterval = time.Minute

// sweepLoop removes containers whose Instance no longer exists: at start
// (those deleted while the agent was down) and then every sweepInterval.
func (r *instanceReconciler) sweepLoop(ctx context.Context, c cache.Cache) error {
	if !c.WaitForCacheSync(ctx) {
		return nil
	}
	tick := time.NewTicker(sweepInterval)
	defer tick.Stop()
	for {
		if err := r.sweep(ctx, c); err != nil && ctx.Err() == nil {
			log.FromContext(ctx).Error(err, "remove containers of deleted instances")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func (r *instanceReconciler) sweep(ctx context.Context, c client.Reader) error {
	// Containers first: an Instance created after the list is not missed,
	// since its containers are not in it.
	containers, err := r.rt.List(ctx)
	if err != nil {
		return err
	}
	var withVolumes []types.UID
	if r.volumes != nil {
		if withVolumes, err = r.volumes.instances(); err != nil {
			return err
		}
	}
	var attached []string
	if r.network != nil {
		if attached, err = r.network.Attached(); err != nil {
			return err
		}
	}
	var list skiffv1alpha1.InstanceList
	if err := c.List(ctx, &list); err != nil {
		return err
	}
	live := map[string]bool{}
	for _, inst := range list.Items {
		live[string(inst.UID)] = true
	}
	var errs []error
	stopping := map[string]bool{} // a container of theirs is not gone yet
	for _, ct := range containers {
		uid, ok := ct.Labels[labelInstanceUID]
		if !ok || live[uid] {
			continue
		}
		log.FromContext(ctx).Info("removing the container of a deleted instance", "container", ct.ID, "instance", ct.Labels[labelInstance])
		if err := r.stopContainer(ctx, ct.ID, 10*time.Second); err != nil {
			errs = append(errs, fmt.Errorf("container %s: %w", ct.ID, err))
			stopping[uid] = true
		}
	}
	for _, uid := range attached {
		if live[uid] {
			continue
		}
		log.FromContext(ctx).Info("removing the network of a deleted instance", "uid", uid)
		if err := r.network.Teardown(ctx, uid); err != nil {
			errs = append(errs, err)
		}
	}
	for _, uid := range withVolumes {
		if live[string(uid)] || stopping[string(uid)] {
			continue
		}
		log.FromContext(ctx).Info("removing the volumes of a deleted instance", "uid", uid)
		if err := r.volumes.remove(uid); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
