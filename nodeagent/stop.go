package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/nodeagent/runtime"
)

// stop ends the Instance's containers gracefully and releases the
// finalizer. It does not wait out a grace period in a worker: a stop in
// progress comes back (RequeueAfter) until its containers are gone, so
// that stopping Instances never hold up starting ones.
func (r *instanceReconciler) stop(ctx context.Context, inst *skiffv1alpha1.Instance) (reconcile.Result, error) {
	if !controllerutil.ContainsFinalizer(inst, skiffv1alpha1.AgentFinalizer) {
		return reconcile.Result{}, nil
	}
	wait, err := r.stopStep(ctx, inst)
	if err != nil || wait > 0 {
		return reconcile.Result{RequeueAfter: wait}, err
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

// gracePeriod is the Instance's terminationGracePeriodSeconds (30 s).
func gracePeriod(inst *skiffv1alpha1.Instance) time.Duration {
	if inst.Spec.TerminationGracePeriodSeconds != nil {
		return time.Duration(*inst.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	return 30 * time.Second
}

// stopPoll is how often a container given SIGTERM is looked at again.
const stopPoll = 250 * time.Millisecond

// stopStep moves each of the Instance's containers one step towards
// gone: SIGTERM the first time, SIGKILL once the grace period is over,
// then delete. It returns how long to wait before the next step (0: all
// gone).
func (r *instanceReconciler) stopStep(ctx context.Context, inst *skiffv1alpha1.Instance) (time.Duration, error) {
	var wait time.Duration
	for _, c := range allContainers(inst) {
		w, err := r.stopContainerStep(ctx, containerID(inst, c.Name), gracePeriod(inst), r.preStopHook(inst, &c))
		if err != nil {
			return 0, fmt.Errorf("instance %s/%s container %q: %w", inst.Namespace, inst.Name, c.Name, err)
		}
		if w > 0 && (wait == 0 || w < wait) {
			wait = w
		}
	}
	return wait, nil
}

// stopContainerStep is one step of stopping container id, whose preStop
// hook (nil: none) runs first.
func (r *instanceReconciler) stopContainerStep(ctx context.Context, id string, grace time.Duration, hook func(context.Context)) (time.Duration, error) {
	st, err := r.rt.State(ctx, id)
	if errors.Is(err, runtime.ErrNotFound) {
		r.terminating.forget(id)
		return 0, r.removeContainer(id)
	}
	if err != nil {
		return 0, err
	}
	if st.State == runtime.Running {
		deadline, ok := r.terminating.deadline(id)
		if !ok {
			if deadline, err = r.beginStop(ctx, id, grace, hook); err != nil {
				return 0, err
			}
		}
		if left := time.Until(deadline); left > 0 {
			return min(left, stopPoll), nil
		}
		if err := r.rt.Kill(ctx, id, syscall.SIGKILL); err != nil && !errors.Is(err, runtime.ErrBadState) {
			return 0, err
		}
		if st, err = r.waitStopped(ctx, id, 10*time.Second); err != nil {
			return 0, err
		}
	}
	r.terminating.forget(id)
	if err := r.deleteContainer(ctx, id, st); err != nil && !errors.Is(err, runtime.ErrNotFound) {
		return 0, err
	}
	return 0, r.removeContainer(id)
}

// terminations remembers when the grace period of each container given
// SIGTERM ends.
type terminations struct {
	mu sync.Mutex
	m  map[string]time.Time
}

func (t *terminations) deadline(id string) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	d, ok := t.m[id]
	return d, ok
}

func (t *terminations) set(id string, deadline time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]time.Time{}
	}
	t.m[id] = deadline
}

func (t *terminations) forget(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, id)
}

// stopContainer stops container id at once, stepping through
// stopContainerStep in this call (the sweep of orphans, which has no
// Instance to come back to).
func (r *instanceReconciler) stopContainer(ctx context.Context, id string, grace time.Duration) error {
	for {
		wait, err := r.stopContainerStep(ctx, id, grace, nil)
		if err != nil || wait == 0 {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
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
