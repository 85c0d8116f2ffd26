package nodeagent

import (
	"context"
	"errors"
	"fmt"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"os"
	"path/filepath"
	"slices"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/internal/writes"
	"skiff.dev/skiff/nodeagent/bundle"
	"skiff.dev/skiff/nodeagent/image"
	"skiff.dev/skiff/nodeagent/logs"
	"skiff.dev/skiff/nodeagent/network"
	"skiff.dev/skiff/nodeagent/runtime"
	"skiff.dev/skiff/nodeagent/usage"
)

// Labels the agent keeps on each container, to find its Instance again.
const (
	labelInstance    = "skiff.dev/instance"
	labelInstanceUID = "skiff.dev/instance-uid"
	labelContainer   = "skiff.dev/container"
)

// instanceNetwork gives Instances their network namespaces and addresses.
type instanceNetwork interface {
	Setup(ctx context.Context, id string, ports []network.Port) (network.Attachment, error)
	Teardown(ctx context.Context, id string) error
	Attached() ([]string, error)
	NetNS(id string) string
}

// imageStore is where containers' images come from.
type imageStore interface {
	Ensure(ctx context.Context, ref string, opts image.PullOptions) (*image.Image, error)
}

// instanceReconciler runs the Instances bound to this node: it holds the
// agent finalizer, creates and starts each container, reports status, and
// on deletion stops the containers (SIGTERM, then SIGKILL after the grace
// period), deletes them and releases the finalizer. It is level-triggered:
// every pass re-reads the Instance and the runtime.
type instanceReconciler struct {
	client  client.Client
	rt      runtime.Runtime
	node    string
	hostIP  string
	backoff Backoff
	// images is nil for the sim runtime, which runs no images.
	images imageStore
	// logDir holds containers' logs (ID/container.log); rootfsDir their
	// root file system mounts (ID/rootfs).
	logDir, rootfsDir string
	pidsLimit         int64
	// oom ranks Instances for the OOM killer.
	oom     oomPolicy
	metrics *metrics
	pulls   pullFailures
	// sources reads the Secrets and ConfigMaps that containers take
	// variables from: a direct client, since the node may only get them
	// by name (never list or watch, as a cache would).
	sources client.Reader
	// configErrors holds the config error each waiting container last
	// told in an Event.
	configErrors configErrors
	// network is nil for the sim runtime: its Instances get no address.
	network instanceNetwork
	// hostNetNS is the node's network namespace when it is not the
	// agent's own (--netns): where hostNetwork Instances run.
	hostNetNS string
	// fence, when up, holds every start (nil: never fences).
	fence *fence
	// terminating holds the containers given SIGTERM, until they are gone.
	terminating terminations
	// written is what the agent's own writes replaced.
	written writes.Superseded
	// prober runs containers' probes (nil: none run, as for simulated
	// containers, which are ready while they run).
	prober *prober
	// cgroups are where the runtime makes containers' cgroups, read for
	// their OOM kills (nil: simulated containers, which have none).
	cgroups *usage.Cgroups
	// probeKills are the containers stopped because a probe gave up on
	// them: they restart unless the policy is Never, whatever they exit
	// with, as the kubelet restarts a liveness failure.
	probeKills idSet
	// security is what the node lets containers have.
	security securityPolicy
	// volumes makes the Instances' volumes (nil: the sim runtime, whose
	// containers mount nothing).
	volumes *volumeManager
}

func containerID(inst *skiffv1alpha1.Instance, container string) string {
	return string(inst.UID) + "-" + container
}

func (r *instanceReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var inst skiffv1alpha1.Instance
	if err := r.client.Get(ctx, req.NamespacedName, &inst); err != nil {
		if apierrors.IsNotFound(err) {
			r.written.Forget(req.NamespacedName)
		}
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if r.written.Stale(&inst) {
		// The agent wrote a later version: its event reconciles again.
		return reconcile.Result{}, nil
	}
	if inst.Spec.NodeName != r.node {
		return reconcile.Result{}, nil
	}
	if !inst.DeletionTimestamp.IsZero() {
		return r.stop(ctx, &inst)
	}
	if r.fence.Fenced() {
		// Cut off from everything: start nothing until the fence lifts
		// and says what became of the fenced Instances.
		return reconcile.Result{RequeueAfter: time.Second}, nil
	}
	if endedByController(&inst.Status) {
		// Replaced elsewhere (or about to be): stop it so that no
		// duplicate runs, and leave the controller's status alone. The
		// finalizer stays until the Instance is deleted.
		if wait, err := r.stopStep(ctx, &inst); err != nil || wait > 0 {
			return reconcile.Result{RequeueAfter: wait}, err
		}
		return reconcile.Result{}, r.detach(ctx, &inst)
	}
	if controllerutil.AddFinalizer(&inst, skiffv1alpha1.AgentFinalizer) {
		// Only for an Instance created with spec.nodeName: a bind sets
		// the finalizer itself. Go on with the updated object: waiting
		// for the update's own event would cost a round trip first.
		if err := r.written.Write(&inst, func() error { return r.client.Update(ctx, &inst) }); err != nil {
			return reconcile.Result{}, err
		}
	}
	if inst.Finished() {
		// Done for good: its address and hostPorts go back to the node.
		return reconcile.Result{}, r.detach(ctx, &inst)
	}
	sandbox, waiting := r.prepare(ctx, &inst)
	if waiting != nil {
		// No container can run without the Instance's network and volumes.
		var inits, results []containerResult
		for i := range inst.Spec.InitContainers {
			inits = append(inits, waitingResult(&inst, &inst.Spec.InitContainers[i], waiting.Reason, waiting.Message))
		}
		for i := range inst.Spec.Containers {
			results = append(results, waitingResult(&inst, &inst.Spec.Containers[i], waiting.Reason, waiting.Message))
		}
		if err := r.reportStatus(ctx, &inst, inits, results, ""); err != nil {
			return reconcile.Result{}, err
		}
		return reconcile.Result{RequeueAfter: networkRetry}, nil
	}
	if evicted, err := r.evictIfOver(ctx, &inst); err != nil || evicted {
		return reconcile.Result{Requeue: evicted}, err
	}
	inits, results, runErr := r.runAll(ctx, &inst, sandbox)
	if err := r.reportStatus(ctx, &inst, inits, results, sandbox.ip); err != nil {
		return reconcile.Result{}, err
	}
	// Nothing in the API changes when a container exits: look again, or
	// when the earliest back-off ends.
	next := recheckInterval
	for _, res := range append(inits, results...) {
		if !res.retryAt.IsZero() {
			next = min(next, max(time.Until(res.retryAt), time.Millisecond))
		}
	}
	return reconcile.Result{RequeueAfter: next}, runErr
}

// pullTimeout bounds one image pull with its unpacking.
const pullTimeout = 10 * time.Minute

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

// containerResult is one container's observed state after a pass.
type containerResult struct {
	status skiffv1alpha1.ContainerStatus
	// init: an init container's.
	init bool
	// done: the container exited and its restart policy says stay down.
	done bool
	// retryAt: the container waits in back-off until then.
	retryAt time.Time
}

// runAll runs the init containers, then, once they have all completed,
// the containers (which wait, PodInitializing, until then).
func (r *instanceReconciler) runAll(ctx context.Context, inst *skiffv1alpha1.Instance, sb sandbox) (inits, results []containerResult, err error) {
	inits, initialized, initErr := r.runInit(ctx, inst, sb)
	if !initialized {
		for i := range inst.Spec.Containers {
			results = append(results, waitingResult(inst, &inst.Spec.Containers[i], "PodInitializing", ""))
		}
		return inits, results, initErr
	}
	results, err = r.run(ctx, inst, sb)
	return inits, results, errors.Join(initErr, err)
}

// run makes sure every container of the Instance runs, restarting exited
// ones as the restart policy and the crash-loop back-off allow.
func (r *instanceReconciler) run(ctx context.Context, inst *skiffv1alpha1.Instance, sb sandbox) ([]containerResult, error) {
	var results []containerResult
	var errs []error
	for _, c := range inst.Spec.Containers {
		res, err := r.runContainer(ctx, inst, &c, sb, inst.Spec.RestartPolicy)
		if err != nil {
			errs = append(errs, fmt.Errorf("instance %s/%s container %q: %w", inst.Namespace, inst.Name, c.Name, err))
		}
		results = append(results, res)
	}
	return results, errors.Join(errs...)
}

// runContainer runs c, restarting it as policy says.
func (r *instanceReconciler) runContainer(ctx context.Context, inst *skiffv1alpha1.Instance, c *skiffv1alpha1.Container, sb sandbox, policy skiffv1alpha1.RestartPolicy) (containerResult, error) {
	id := containerID(inst, c.Name)
	restarts, imageID := previous(inst, c.Name)
	res, err := r.runImage(ctx, inst, c, id, sb, policy, restarts, &imageID)
	res.status.ImageID = imageID // of the container that ran last
	if res.status.LastTerminationState == (skiffv1alpha1.ContainerState{}) {
		// How the run before this one ended, until another ends.
		res.status.LastTerminationState = previousStatus(inst, c.Name).LastTerminationState
	}
	return res, err
}

// runImage runs the container. The image is looked up (and pulled) only
// when a container is to be made: a pass over a running one reads nothing
// but the runtime's state. imageID is the image's digest, updated when a
// container is made.
func (r *instanceReconciler) runImage(ctx context.Context, inst *skiffv1alpha1.Instance, c *skiffv1alpha1.Container, id string, sb sandbox, policy skiffv1alpha1.RestartPolicy, restarts int32, imageID *string) (containerResult, error) {
	st, err := r.rt.State(ctx, id)
	switch {
	case errors.Is(err, runtime.ErrNotFound):
		img, waiting := r.image(ctx, inst, id, c, restarts)
		if waiting != nil {
			return *waiting, nil
		}
		*imageID = imageDigest(img)
		env, waiting := r.containerConfig(ctx, inst, id, c, img, restarts)
		if waiting != nil {
			return *waiting, nil
		}
		st, err = r.createAndStart(ctx, inst, c, id, sb, img, env)
	case err == nil && st.State == runtime.Created:
		// A start that failed last time is retried.
		if err = r.rt.Start(ctx, id); err == nil {
			st, err = r.rt.State(ctx, id)
		}
	}
	if err != nil {
		return containerResult{status: containerStatus(c, id, st, restarts, err)}, err
	}
	if st.State == runtime.Running {
		return r.probed(ctx, inst, c, id, sb, st, containerResult{status: containerStatus(c, id, st, restarts, nil)})
	}
	if st.State != runtime.Stopped {
		return containerResult{status: containerStatus(c, id, st, restarts, nil)}, nil
	}
	r.prober.forget(id)
	r.terminating.forget(id)
	if !shouldRestart(policy, st.ExitCode) && !(r.probeKills.has(id) && policy != skiffv1alpha1.RestartPolicyNever) {
		cs := containerStatus(c, id, st, restarts, nil)
		cs.State = r.ended(c, id, st, restarts)
		return containerResult{status: cs, done: true}, nil
	}
	last := r.ended(c, id, st, restarts)
	if at := r.backoff.restartAt(st.FinishedAt, restarts); time.Now().Before(at) {
		cs := containerStatus(c, id, st, restarts, nil)
		cs.LastTerminationState = last
		cs.State = skiffv1alpha1.ContainerState{Waiting: &skiffv1alpha1.ContainerStateWaiting{
			Reason:  "CrashLoopBackOff",
			Message: fmt.Sprintf("back-off %s restarting container that exited with code %d", r.backoff.Delay(restarts), st.ExitCode),
		}}
		return containerResult{status: cs, retryAt: at}, nil
	}
	// The image and the environment first: while they cannot be had, the
	// exited container stays.
	img, waiting := r.image(ctx, inst, id, c, restarts)
	if waiting != nil {
		return *waiting, nil
	}
	*imageID = imageDigest(img)
	env, waiting := r.containerConfig(ctx, inst, id, c, img, restarts)
	if waiting != nil {
		return *waiting, nil
	}
	if err := r.deleteContainer(ctx, id, st); err != nil {
		return containerResult{status: containerStatus(c, id, st, restarts, err)}, err
	}
	r.probeKills.remove(id)
	st, err = r.createAndStart(ctx, inst, c, id, sb, img, env)
	cs := containerStatus(c, id, st, restarts+1, err)
	cs.LastTerminationState = last
	return containerResult{status: cs}, err
}

// ended is the terminated state of a stopped container, with the reason
// (OOMKilled, Error, Completed) and its termination message: read before
// the container and its cgroup are deleted.
func (r *instanceReconciler) ended(c *skiffv1alpha1.Container, id string, st runtime.Status, restarts int32) skiffv1alpha1.ContainerState {
	state := containerStatus(c, id, st, restarts, nil).State
	if t := state.Terminated; t != nil {
		t.Reason = r.terminatedReason(id, st.ExitCode)
		t.Message = r.terminationMessage(id)
	}
	return state
}

// deleteContainer deletes a stopped container, keeping its log and rootfs
// mount for a restart (or for removeContainer).
func (r *instanceReconciler) deleteContainer(ctx context.Context, id string, st runtime.Status) error {
	if err := r.rt.Delete(ctx, id); err != nil {
		return err
	}
	if !st.StartedAt.IsZero() && !st.FinishedAt.IsZero() {
		r.metrics.runDuration.Observe(st.FinishedAt.Sub(st.StartedAt).Seconds())
	}
	return nil
}

// removeContainer cleans up after a container for good: its rootfs mount
// and its logs.
func (r *instanceReconciler) removeContainer(id string) error {
	if r.rootfsDir != "" {
		if err := image.Unmount(filepath.Join(r.rootfsDir, id)); err != nil {
			return err
		}
	}
	if r.logDir != "" {
		if err := os.RemoveAll(filepath.Join(r.logDir, id)); err != nil {
			return fmt.Errorf("container %s logs: %w", id, err)
		}
	}
	r.pulls.clear(id)
	r.configErrors.clear(id)
	r.prober.forget(id)
	r.probeKills.remove(id)
	return nil
}

// logPath is where a container's current log is; previousLogPath holds
// the run before its last restart.
func logPath(dir, id string) string         { return filepath.Join(dir, id, "container.log") }
func previousLogPath(dir, id string) string { return filepath.Join(dir, id, "previous.log") }

// previous is what the last status said of a container (or init
// container): its restarts and its image's digest.
func previous(inst *skiffv1alpha1.Instance, name string) (restarts int32, imageID string) {
	cs := previousStatus(inst, name)
	return cs.RestartCount, cs.ImageID
}

// imageDigest is img's ID; the sim runtime runs no image.
func imageDigest(img *image.Image) string {
	if img == nil {
		return ""
	}
	return img.ID
}

// createAndStart makes and starts the container with its resolved
// environment, env (NAME=value).
func (r *instanceReconciler) createAndStart(ctx context.Context, inst *skiffv1alpha1.Instance, c *skiffv1alpha1.Container, id string, sb sandbox, img *image.Image, env []string) (runtime.Status, error) {
	spec, err := r.containerSpec(inst, c, id, sb, img, env)
	if err != nil {
		r.metrics.creationErrors.Inc()
		return runtime.Status{}, err
	}
	if err := r.rt.Create(ctx, id, spec); err != nil {
		r.metrics.creationErrors.Inc()
		return runtime.Status{}, err
	}
	r.metrics.created.Inc()
	if err := r.rt.Start(ctx, id); err != nil {
		return runtime.Status{}, err
	}
	return r.rt.State(ctx, id)
}

// containerSpec prepares what the runtime needs: the merged process, the
// limits, a fresh rootfs mount of the image, and the log (the previous
// run's is kept as previous.log). The containers of an Instance share its
// network namespace, and see its name and the node's resolvers in /etc.
func (r *instanceReconciler) containerSpec(inst *skiffv1alpha1.Instance, c *skiffv1alpha1.Container, id string, sb sandbox, img *image.Image, env []string) (runtime.Spec, error) {
	in := bundle.Input{Hostname: hostname(inst), HostNetwork: inst.Spec.HostNetwork, NetNS: sb.netns, PidsLimit: r.pidsLimit,
		OOMScoreAdj: r.oom.score(inst)}
	limits(&in, c.Resources)
	if err := r.secure(&in, inst, c, img); err != nil {
		return runtime.Spec{}, err
	}
	in.Args, in.Env, in.Cwd = append(slices.Clone(c.Command), c.Args...), env, c.WorkingDir
	if img != nil {
		proc, err := mergeProcess(img.Config, c, env)
		if err != nil {
			return runtime.Spec{}, err
		}
		in.Args, in.Env, in.Cwd = proc.Args, proc.Env, proc.Cwd
		dir := filepath.Join(r.rootfsDir, id)
		if err := image.Mount(img.Layers, dir); err != nil {
			return runtime.Spec{}, err
		}
		in.Rootfs = filepath.Join(dir, "rootfs")
		if in.Files, err = etcFiles(dir, inst, sb.ip); err != nil {
			return runtime.Spec{}, err
		}
		if in.Mounts, err = r.volumes.mounts(inst, c, sb.volumes); err != nil {
			return runtime.Spec{}, err
		}
		if gid := fsGroup(inst); gid >= 0 {
			in.AdditionalGids = append(in.AdditionalGids, uint32(gid))
		}
		term, err := r.terminationFile(id, c)
		if err != nil {
			return runtime.Spec{}, err
		}
		in.Files = append(in.Files, term)
	}
	spec := runtime.Spec{
		Image:  c.Image,
		Bundle: in,
		Labels: map[string]string{labelInstance: inst.Namespace + "/" + inst.Name, labelInstanceUID: string(inst.UID), labelContainer: c.Name},
	}
	if r.logDir != "" {
		spec.LogPath = logPath(r.logDir, id)
		if err := logs.Retire(spec.LogPath, previousLogPath(r.logDir, id)); err != nil {
			return runtime.Spec{}, err
		}
	}
	return spec, nil
}

// endedByController reports whether a verdict, not the containers' exit,
// ended the Instance: the node lifecycle controller's when the node was
// lost (NodeLost), the scheduler's when it preempted it (Preempted), the
// agent's own eviction (Evicted). A phase the agent reports from its
// containers carries no reason, so a Failed phase with a reason is a
// verdict, while the containers may still run.
func endedByController(s *skiffv1alpha1.InstanceStatus) bool {
	return s.Phase == skiffv1alpha1.InstanceFailed && s.Reason != ""
}
