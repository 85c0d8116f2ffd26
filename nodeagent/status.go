package nodeagent

import (
	"context"
	"fmt"
	"time"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/nodeagent/runtime"
)

// The Instance's status, as the agent reports it: each container's state
// and the Instance's phase and conditions.

// containerStatus is a container's status from the runtime's state (or
// the error that kept it from being made).
func containerStatus(c *skiffv1alpha1.Container, id string, st runtime.Status, restarts int32, err error) skiffv1alpha1.ContainerStatus {
	cs := skiffv1alpha1.ContainerStatus{Name: c.Name, Image: c.Image, ContainerID: id, RestartCount: restarts}
	switch {
	case err != nil:
		cs.State.Waiting = &skiffv1alpha1.ContainerStateWaiting{Reason: "CreateContainerError", Message: shortMessage(err)}
	case st.State == runtime.Running:
		// Ready until the probes say otherwise (probed).
		cs.Ready = true
		cs.State.Running = &skiffv1alpha1.ContainerStateRunning{StartedAt: apiTime(st.StartedAt)}
	case st.State == runtime.Stopped:
		cs.State.Terminated = &skiffv1alpha1.ContainerStateTerminated{
			ExitCode: int32(st.ExitCode), Reason: exitReason(st.ExitCode, 0),
			StartedAt: apiTime(st.StartedAt), FinishedAt: apiTime(st.FinishedAt),
		}
	default:
		cs.State.Waiting = &skiffv1alpha1.ContainerStateWaiting{Reason: "ContainerCreating"}
	}
	return cs
}

// apiTime is t as the API stores it (whole seconds), so that a status
// compares equal to what was written and a pass with no change writes
// nothing.
func apiTime(t time.Time) metav1.Time {
	if t.IsZero() {
		return metav1.Time{}
	}
	return metav1.NewTime(t.Truncate(time.Second))
}

// reportStatus derives phase and Ready from the containers: Pending while
// init containers run, Failed when one failed for good, then Running while
// any container runs or restarts, Succeeded or Failed once every one is
// done for good.
func (r *instanceReconciler) reportStatus(ctx context.Context, inst *skiffv1alpha1.Instance, inits, results []containerResult, ip string) error {
	before := inst.Status.DeepCopy()
	s := &inst.Status
	s.InitContainerStatuses, s.ContainerStatuses, s.HostIP, s.InstanceIP = nil, nil, r.hostIP, ip
	initialized := true
	for _, res := range inits {
		s.InitContainerStatuses = append(s.InitContainerStatuses, res.status)
		initialized = initialized && res.done && succeeded(res)
	}
	if s.StartTime == nil {
		now := apiTime(time.Now())
		s.StartTime = &now
	}
	ready, allDone, failed, started := len(results) > 0, len(results) > 0, false, false
	var unready []string
	for _, res := range results {
		cs := res.status
		s.ContainerStatuses = append(s.ContainerStatuses, cs)
		ready = ready && cs.Ready
		if !cs.Ready {
			unready = append(unready, cs.Name)
		}
		allDone = allDone && res.done
		failed = failed || res.done && cs.State.Terminated != nil && cs.State.Terminated.ExitCode != 0
		started = started || cs.State.Running != nil || cs.State.Terminated != nil || cs.RestartCount > 0
	}
	switch {
	case initFailed(inits) || allDone && failed:
		s.Phase = skiffv1alpha1.InstanceFailed
	case !initialized:
		s.Phase = skiffv1alpha1.InstancePending
	case allDone:
		s.Phase = skiffv1alpha1.InstanceSucceeded
	case started:
		s.Phase = skiffv1alpha1.InstanceRunning
	default:
		s.Phase = skiffv1alpha1.InstancePending
	}
	cond := metav1.Condition{Type: skiffv1alpha1.InstanceReady, Status: metav1.ConditionFalse, Reason: "ContainersNotReady",
		Message: fmt.Sprintf("containers with unready status: %v", unready), ObservedGeneration: inst.Generation}
	if ready {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionTrue, "ContainersReady", "every container is running and ready"
	}
	meta.SetStatusCondition(&s.Conditions, cond)
	if apiequality.Semantic.DeepEqual(before, s) {
		return nil
	}
	if err := r.written.Write(inst, func() error { return r.client.Status().Update(ctx, inst) }); err != nil {
		return fmt.Errorf("instance %s/%s status: %w", inst.Namespace, inst.Name, err)
	}
	return nil
}
