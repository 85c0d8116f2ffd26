package nodeagent

import (
	"context"
	"fmt"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/nodeagent/runtime"
)

// Init containers, as a Pod's: each runs to completion, one after
// another, before any container starts. One that fails runs again after a
// back-off unless the restart policy is Never, which fails the Instance.

// initPolicy is how init containers restart: on failure only, whatever
// the Instance's policy (Always means OnFailure for them), or never.
func initPolicy(inst *skiffv1alpha1.Instance) skiffv1alpha1.RestartPolicy {
	if inst.Spec.RestartPolicy == skiffv1alpha1.RestartPolicyNever {
		return skiffv1alpha1.RestartPolicyNever
	}
	return skiffv1alpha1.RestartPolicyOnFailure
}

// runInit runs the Instance's init containers in order until one is not
// done. done reports whether every one has completed; the results hold
// one per init container (those not reached wait).
func (r *instanceReconciler) runInit(ctx context.Context, inst *skiffv1alpha1.Instance, sb sandbox) (results []containerResult, done bool, err error) {
	done = true
	for i := range inst.Spec.InitContainers {
		c := &inst.Spec.InitContainers[i]
		if !done {
			results = append(results, waitingResult(inst, c, "PodInitializing", ""))
			continue
		}
		if completedBefore(inst, c.Name) && r.goneOrCompleted(ctx, containerID(inst, c.Name)) {
			// Completed in an earlier pass (its container may be gone
			// since, say after a reboot): it does not run again.
			results = append(results, containerResult{status: previousStatus(inst, c.Name), done: true})
			continue
		}
		res, runErr := r.runContainer(ctx, inst, c, sb, initPolicy(inst))
		res.init = true
		results = append(results, res)
		if runErr != nil {
			err = fmt.Errorf("init container %q: %w", c.Name, runErr)
		}
		if !res.done || !succeeded(res) {
			done = false
		}
	}
	return results, done, err
}

// succeeded reports whether a result is a container that exited 0.
func succeeded(res containerResult) bool {
	t := res.status.State.Terminated
	return t != nil && t.ExitCode == 0
}

// initFailed reports whether an init container failed for good (restart
// policy Never): the Instance fails and its containers never start.
func initFailed(results []containerResult) bool {
	for _, res := range results {
		if res.done && !succeeded(res) {
			return true
		}
	}
	return false
}

// completedBefore reports whether the last status says init container
// name completed.
func completedBefore(inst *skiffv1alpha1.Instance, name string) bool {
	for _, cs := range inst.Status.InitContainerStatuses {
		if cs.Name == name {
			t := cs.State.Terminated
			return t != nil && t.ExitCode == 0
		}
	}
	return false
}

// goneOrCompleted reports whether container id no longer exists or exited
// 0 (so a completed init container is not run twice).
func (r *instanceReconciler) goneOrCompleted(ctx context.Context, id string) bool {
	st, err := r.rt.State(ctx, id)
	if err != nil {
		return true
	}
	return st.State == runtime.Stopped && st.ExitCode == 0
}

// previousStatus is the container's last reported status.
func previousStatus(inst *skiffv1alpha1.Instance, name string) skiffv1alpha1.ContainerStatus {
	for _, list := range [][]skiffv1alpha1.ContainerStatus{inst.Status.InitContainerStatuses, inst.Status.ContainerStatuses} {
		for _, cs := range list {
			if cs.Name == name {
				return cs
			}
		}
	}
	return skiffv1alpha1.ContainerStatus{Name: name}
}

// waitingResult is a container that waits for reason (PodInitializing:
// for the init containers).
func waitingResult(inst *skiffv1alpha1.Instance, c *skiffv1alpha1.Container, reason, msg string) containerResult {
	restarts, imageID := previous(inst, c.Name)
	return containerResult{status: skiffv1alpha1.ContainerStatus{
		Name: c.Name, Image: c.Image, RestartCount: restarts, ImageID: imageID,
		State: skiffv1alpha1.ContainerState{Waiting: &skiffv1alpha1.ContainerStateWaiting{Reason: reason, Message: msg}},
	}}
}

// allContainers are the init containers, then the containers: every
// container the Instance may have on the node.
func allContainers(inst *skiffv1alpha1.Instance) []skiffv1alpha1.Container {
	return append(append([]skiffv1alpha1.Container(nil), inst.Spec.InitContainers...), inst.Spec.Containers...)
}
