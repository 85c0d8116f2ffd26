package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/nodeagent/runtime"
)

// stop ends the Instance's containers gracefully and releases the finalizer.
func (r *instanceReconciler) stop(ctx context.Context, inst *skiffv1alpha1.Instance) (reconcile.Result, error) {
	if !controllerutil.ContainsFinalizer(inst, skiffv1alpha1.AgentFinalizer) {
		return reconcile.Result{}, nil
	}
	if err := r.stopContainers(ctx, inst); err != nil {
		return reconcile.Result{}, err
	}
	if err := r.detach(ctx, inst); err != nil {
		return reconcile.Result{}, err
	}
	controllerutil.RemoveFinalizer(inst, skiffv1alpha1.AgentFinalizer)
	if err := r.client.Update(ctx, inst); err != nil && !apierrors.IsNotFound(err) {
		return reconcile.Result{}, fmt.Errorf("instance %s/%s finalizer: %w", inst.Namespace, inst.Name, err)
	}
	return reconcile.Result{}, nil
}

// stopContainers stops and removes each of the Instance's containers,
// within its termination grace period. Containers already gone are fine,
// so a second call costs a runtime lookup per container.
func (r *instanceReconciler) stopContainers(ctx context.Context, inst *skiffv1alpha1.Instance) error {
	grace := 30 * time.Second
	if inst.Spec.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*inst.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	for _, c := range inst.Spec.Containers {
		if err := r.stopContainer(ctx, containerID(inst, c.Name), grace); err != nil {
			return fmt.Errorf("instance %s/%s container %q: %w", inst.Namespace, inst.Name, c.Name, err)
		}
	}
	return nil
}

// stopContainer sends SIGTERM, waits up to grace, sends SIGKILL, deletes.
func (r *instanceReconciler) stopContainer(ctx context.Context, id string, grace time.Duration) (err error) {
	st, err := r.rt.State(ctx, id)
	if errors.Is(err, runtime.ErrNotFound) {
		return r.removeContainer(id)
	}
	if err != nil {
		return err
	}
	defer func() {
		if err == nil {
			err = r.removeContainer(id)
		}
	}()
	if st.State == runtime.Running {
		if err := r.rt.Kill(ctx, id, syscall.SIGTERM); err != nil && !errors.Is(err, runtime.ErrBadState) {
			return err
		}
		deadline := time.NewTimer(grace)
		defer deadline.Stop()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
	wait:
		for st.State == runtime.Running {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-deadline.C:
				break wait
			case <-tick.C:
			}
			if st, err = r.rt.State(ctx, id); err != nil {
				return err
			}
		}
		if st.State == runtime.Running {
			if err := r.rt.Kill(ctx, id, syscall.SIGKILL); err != nil && !errors.Is(err, runtime.ErrBadState) {
				return err
			}
			if st, err = r.waitStopped(ctx, id, 10*time.Second); err != nil {
				return err
			}
		}
	}
	if err := r.deleteContainer(ctx, id, st); err != nil && !errors.Is(err, runtime.ErrNotFound) {
		return err
	}
	return nil
}

// waitStopped waits up to limit for a killed container to stop.
func (r *instanceReconciler) waitStopped(ctx context.Context, id string, limit time.Duration) (runtime.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		st, err := r.rt.State(ctx, id)
		if err != nil || st.State != runtime.Running {
			return st, err
		}
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("container %s still runs %s after SIGKILL", id, limit)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
