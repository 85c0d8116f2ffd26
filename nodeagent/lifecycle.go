package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/nodeagent/bundle"
	"skiff.dev/skiff/nodeagent/network"
	"skiff.dev/skiff/nodeagent/runtime"
)

// A container's lifecycle around its process, as the kubelet keeps it: the
// preStop hook before SIGTERM, and the termination message it may leave.

// sigtermShare is how much of the grace period a preStop hook leaves to
// the process after SIGTERM (at most half of it).
const sigtermShare = 2 * time.Second

// beginStop starts stopping container id: it runs hook (the preStop hook;
// nil: none) and then sends SIGTERM, in the background so that no worker
// waits; the grace period, which the hook counts against, ends at the
// returned deadline.
func (r *instanceReconciler) beginStop(ctx context.Context, id string, grace time.Duration, hook func(context.Context)) (time.Time, error) {
	deadline := time.Now().Add(grace)
	r.terminating.set(id, deadline)
	if hook == nil {
		if err := r.rt.Kill(ctx, id, syscall.SIGTERM); err != nil && !errors.Is(err, runtime.ErrBadState) {
			return deadline, err
		}
		return deadline, nil
	}
	// The hook may take the grace period but the last seconds, which are
	// SIGTERM's (as the kubelet keeps two for it).
	hookDeadline := deadline.Add(-min(grace/2, sigtermShare))
	go func() {
		bg := context.WithoutCancel(ctx)
		hctx, cancel := context.WithDeadline(bg, hookDeadline)
		hook(hctx)
		cancel()
		// Past the deadline the stop step sends SIGKILL itself.
		_ = r.rt.Kill(bg, id, syscall.SIGTERM)
	}()
	return deadline, nil
}

// preStopHook is c's preStop hook as a function, nil when it has none. A
// hook that fails is told in a FailedPreStopHook Event; the container is
// stopped either way.
func (r *instanceReconciler) preStopHook(inst *skiffv1alpha1.Instance, c *skiffv1alpha1.Container) func(context.Context) {
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil {
		return nil
	}
	h, id, inst, c := c.Lifecycle.PreStop, containerID(inst, c.Name), inst.DeepCopy(), c.DeepCopy()
	return func(ctx context.Context) {
		var ok bool
		var msg string
		switch {
		case h.Exec != nil:
			ok, msg = execAction(ctx, r.rt, id, h.Exec)
		case h.HTTPGet != nil:
			host := h.HTTPGet.Host
			if host == "" {
				host = inst.Status.InstanceIP
			}
			// From inside the Instance's network namespace, as probes: a
			// hook must not reach what listens on the node only.
			client := probeHTTPClient(network.DialContext(r.instanceNetNS(inst), &net.Dialer{}))
			if ok, msg = httpGetAction(ctx, client, h.HTTPGet, c, host); !ok {
				// Whatever answered, only whether it did is told.
				msg = "HTTP GET failed"
			}
		default:
			return
		}
		if !ok {
			ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			r.event(ectx, inst, "FailedPreStopHook", fmt.Sprintf("container %q: PreStop hook failed: %s", c.Name, msg))
		}
	}
}

// instanceNetNS is the network namespace inst's containers run in: the
// node's with hostNetwork, else its own ("" without Instance networking,
// where they run in the agent's).
func (r *instanceReconciler) instanceNetNS(inst *skiffv1alpha1.Instance) string {
	if inst.Spec.HostNetwork || r.network == nil {
		return r.hostNetNS
	}
	return r.network.NetNS(string(inst.UID))
}

// terminationLog is where the host keeps container id's termination
// message file, bind-mounted at its terminationMessagePath.
func (r *instanceReconciler) terminationLog(id string) string {
	return filepath.Join(r.rootfsDir, id, "termination-log")
}

// terminationFile makes an empty termination message file for a new run
// of container id, writable whatever user the process runs as (the
// agent's directory above it is not open to others).
func (r *instanceReconciler) terminationFile(id string, c *skiffv1alpha1.Container) (bundle.File, error) {
	path := r.terminationLog(id)
	if err := os.WriteFile(path, nil, 0o666); err != nil {
		return bundle.File{}, fmt.Errorf("termination message file: %w", err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		return bundle.File{}, fmt.Errorf("termination message file: %w", err)
	}
	dest := c.TerminationMessagePath
	if dest == "" {
		dest = skiffv1alpha1.DefaultTerminationMessagePath
	}
	return bundle.File{Source: path, Destination: dest, Writable: true}, nil
}

// maxTerminationMessage is how much of the file becomes the message, as
// the kubelet's 4 KiB.
const maxTerminationMessage = 4096

// terminationMessage is what container id wrote to its termination
// message file ("" when nothing, or for simulated containers).
func (r *instanceReconciler) terminationMessage(id string) string {
	if r.rootfsDir == "" {
		return ""
	}
	f, err := os.Open(r.terminationLog(id))
	if err != nil {
		return ""
	}
	defer f.Close()
	data, _ := io.ReadAll(io.LimitReader(f, maxTerminationMessage))
	return strings.TrimRight(string(data), "\n")
}
