package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/nodeagent/bundle"
	"skiff.dev/skiff/nodeagent/runtime"
)

// Labels the agent keeps on each container, to find its Instance again.
const (
	labelInstance  = "skiff.dev/instance"
	labelContainer = "skiff.dev/container"
)

// instanceReconciler runs the Instances bound to this node: it holds the
// agent finalizer, creates and starts each container, reports status, and
// on deletion stops the containers (SIGTERM, then SIGKILL after the grace
// period), deletes them and releases the finalizer. It is level-triggered:
// every pass re-reads the Instance and the runtime.
type instanceReconciler struct {
	client client.Client
	rt     runtime.Runtime
	node   string
	hostIP string
}

func containerID(inst *skiffv1alpha1.Instance, container string) string {
	return string(inst.UID) + "-" + container
}

func (r *instanceReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var inst skiffv1alpha1.Instance
	if err := r.client.Get(ctx, req.NamespacedName, &inst); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if inst.Spec.NodeName != r.node {
		return reconcile.Result{}, nil
	}
	if !inst.DeletionTimestamp.IsZero() {
		return r.stop(ctx, &inst)
	}
	if controllerutil.AddFinalizer(&inst, skiffv1alpha1.AgentFinalizer) {
		// The update triggers the next pass.
		return reconcile.Result{}, r.client.Update(ctx, &inst)
	}
	if inst.Status.Phase == skiffv1alpha1.InstanceSucceeded || inst.Status.Phase == skiffv1alpha1.InstanceFailed {
		return reconcile.Result{}, nil
	}
	statuses, runErr := r.run(ctx, &inst)
	if err := r.reportStatus(ctx, &inst, statuses); err != nil {
		return reconcile.Result{}, err
	}
	// Nothing in the API changes when a container exits: look again.
	return reconcile.Result{RequeueAfter: recheckInterval}, runErr
}

// recheckInterval is how often a running Instance's containers are
// re-read from the runtime.
const recheckInterval = 10 * time.Second

// maxMessage bounds an error message copied into status, so a repeated
// failure cannot grow the object.
const maxMessage = 512

func shortMessage(err error) string {
	msg := err.Error()
	if len(msg) > maxMessage {
		msg = msg[:maxMessage] + "..."
	}
	return msg
}

// run makes sure every container of the Instance exists and runs.
func (r *instanceReconciler) run(ctx context.Context, inst *skiffv1alpha1.Instance) ([]skiffv1alpha1.ContainerStatus, error) {
	var statuses []skiffv1alpha1.ContainerStatus
	var errs []error
	for _, c := range inst.Spec.Containers {
		id := containerID(inst, c.Name)
		st, err := r.rt.State(ctx, id)
		switch {
		case errors.Is(err, runtime.ErrNotFound):
			st, err = r.createAndStart(ctx, inst, &c, id)
		case err == nil && st.State == runtime.Created:
			// A start that failed last time is retried.
			if err = r.rt.Start(ctx, id); err == nil {
				st, err = r.rt.State(ctx, id)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("instance %s/%s container %q: %w", inst.Namespace, inst.Name, c.Name, err))
		}
		statuses = append(statuses, containerStatus(&c, id, st, err))
	}
	return statuses, errors.Join(errs...)
}

func (r *instanceReconciler) createAndStart(ctx context.Context, inst *skiffv1alpha1.Instance, c *skiffv1alpha1.Container, id string) (runtime.Status, error) {
	env := make([]string, 0, len(c.Env))
	for _, e := range c.Env {
		env = append(env, e.Name+"="+e.Value)
	}
	spec := runtime.Spec{
		Image:  c.Image,
		Bundle: bundle.Input{Args: append(append([]string{}, c.Command...), c.Args...), Env: env, Cwd: c.WorkingDir},
		Labels: map[string]string{labelInstance: inst.Namespace + "/" + inst.Name, labelContainer: c.Name},
	}
	if err := r.rt.Create(ctx, id, spec); err != nil {
		return runtime.Status{}, err
	}
	if err := r.rt.Start(ctx, id); err != nil {
		return runtime.Status{}, err
	}
	return r.rt.State(ctx, id)
}

func containerStatus(c *skiffv1alpha1.Container, id string, st runtime.Status, err error) skiffv1alpha1.ContainerStatus {
	cs := skiffv1alpha1.ContainerStatus{Name: c.Name, Image: c.Image, ContainerID: id}
	switch {
	case err != nil:
		cs.State.Waiting = &skiffv1alpha1.ContainerStateWaiting{Reason: "CreateContainerError", Message: shortMessage(err)}
	case st.State == runtime.Running:
		cs.Ready = true
		cs.State.Running = &skiffv1alpha1.ContainerStateRunning{StartedAt: apiTime(st.StartedAt)}
	case st.State == runtime.Stopped:
		reason := "Completed"
		if st.ExitCode != 0 {
			reason = "Error"
		}
		cs.State.Terminated = &skiffv1alpha1.ContainerStateTerminated{
			ExitCode: int32(st.ExitCode), Reason: reason,
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

// reportStatus derives phase and Ready from the container statuses.
func (r *instanceReconciler) reportStatus(ctx context.Context, inst *skiffv1alpha1.Instance, statuses []skiffv1alpha1.ContainerStatus) error {
	before := inst.Status.DeepCopy()
	s := &inst.Status
	s.ContainerStatuses, s.HostIP = statuses, r.hostIP
	if s.StartTime == nil {
		now := apiTime(time.Now())
		s.StartTime = &now
	}
	ready := len(statuses) > 0
	for _, cs := range statuses {
		ready = ready && cs.Ready
	}
	s.Phase = skiffv1alpha1.InstancePending
	cond := metav1.Condition{Type: skiffv1alpha1.InstanceReady, Status: metav1.ConditionFalse, Reason: "ContainersNotReady",
		Message: "not every container is running", ObservedGeneration: inst.Generation}
	if ready {
		s.Phase = skiffv1alpha1.InstanceRunning
		cond.Status, cond.Reason, cond.Message = metav1.ConditionTrue, "ContainersReady", "every container is running"
	}
	meta.SetStatusCondition(&s.Conditions, cond)
	if apiequality.Semantic.DeepEqual(before, s) {
		return nil
	}
	if err := r.client.Status().Update(ctx, inst); err != nil {
		return fmt.Errorf("instance %s/%s status: %w", inst.Namespace, inst.Name, err)
	}
	return nil
}

// stop ends the Instance's containers gracefully and releases the finalizer.
func (r *instanceReconciler) stop(ctx context.Context, inst *skiffv1alpha1.Instance) (reconcile.Result, error) {
	if !controllerutil.ContainsFinalizer(inst, skiffv1alpha1.AgentFinalizer) {
		return reconcile.Result{}, nil
	}
	grace := 30 * time.Second
	if inst.Spec.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*inst.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	for _, c := range inst.Spec.Containers {
		if err := r.stopContainer(ctx, containerID(inst, c.Name), grace); err != nil {
			return reconcile.Result{}, fmt.Errorf("instance %s/%s container %q: %w", inst.Namespace, inst.Name, c.Name, err)
		}
	}
	controllerutil.RemoveFinalizer(inst, skiffv1alpha1.AgentFinalizer)
	if err := r.client.Update(ctx, inst); err != nil && !apierrors.IsNotFound(err) {
		return reconcile.Result{}, fmt.Errorf("instance %s/%s finalizer: %w", inst.Namespace, inst.Name, err)
	}
	return reconcile.Result{}, nil
}

// stopContainer sends SIGTERM, waits up to grace, sends SIGKILL, deletes.
func (r *instanceReconciler) stopContainer(ctx context.Context, id string, grace time.Duration) error {
	st, err := r.rt.State(ctx, id)
	if errors.Is(err, runtime.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
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
		}
	}
	if err := r.rt.Delete(ctx, id); err != nil && !errors.Is(err, runtime.ErrNotFound) {
		return err
	}
	return nil
}
