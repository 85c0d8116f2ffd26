package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/log"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/nodeagent/network"
)

// networkRetry is how soon an Instance waiting for its network or its
// volumes is looked at again.
const networkRetry = 2 * time.Second

// sandbox is where an Instance's containers run: the network namespace
// they share (empty: a new one, or the runtime's own with hostNetwork),
// the Instance's address, and its volumes' paths on the node by name.
type sandbox struct {
	netns, ip string
	volumes   map[string]string
}

// prepare gives the Instance its network, then its volumes. While either
// cannot be had it returns why, as the containers' waiting state.
func (r *instanceReconciler) prepare(ctx context.Context, inst *skiffv1alpha1.Instance) (sandbox, *skiffv1alpha1.ContainerStateWaiting) {
	sb, waiting := r.attach(ctx, inst)
	if waiting != nil || r.volumes == nil {
		return sb, waiting
	}
	paths, warning, err := r.volumes.setup(ctx, inst)
	if warning != nil {
		if msg := shortMessage(warning); r.configErrors.tell(string(inst.UID), msg) {
			r.event(ctx, inst, "FailedMount", msg)
		}
	}
	if err != nil {
		msg := shortMessage(err)
		if r.configErrors.tell(string(inst.UID), msg) {
			r.event(ctx, inst, "FailedMount", msg)
		}
		return sb, &skiffv1alpha1.ContainerStateWaiting{Reason: "ContainerCreating", Message: msg}
	}
	if warning == nil {
		r.configErrors.clear(string(inst.UID))
	}
	sb.volumes = paths
	return sb, nil
}

// attach gives the Instance its network: with hostNetwork the node's,
// else a namespace of its own with an address from the node's subnet and
// its hostPorts published. While that cannot be had it returns why, as
// the containers' waiting state.
func (r *instanceReconciler) attach(ctx context.Context, inst *skiffv1alpha1.Instance) (sandbox, *skiffv1alpha1.ContainerStateWaiting) {
	if inst.Spec.HostNetwork {
		return sandbox{netns: r.hostNetNS, ip: r.hostIP}, nil
	}
	if r.network == nil {
		return sandbox{}, nil
	}
	att, err := r.network.Setup(ctx, string(inst.UID), hostPorts(inst))
	switch {
	case errors.Is(err, network.ErrNoSubnet):
		return sandbox{}, &skiffv1alpha1.ContainerStateWaiting{Reason: "NetworkNotReady", Message: err.Error()}
	case errors.As(err, new(*network.PortConflictError)):
		// Bound here past the scheduler (spec.nodeName set by hand): it
		// waits for the port rather than take it from the other.
		return sandbox{}, &skiffv1alpha1.ContainerStateWaiting{Reason: "HostPortConflict", Message: err.Error()}
	case err != nil:
		log.FromContext(ctx).Error(err, "instance network", "instance", inst.Namespace+"/"+inst.Name)
		return sandbox{}, &skiffv1alpha1.ContainerStateWaiting{Reason: "CreateNetworkError", Message: shortMessage(err)}
	}
	return sandbox{netns: att.NetNS, ip: att.IP.String()}, nil
}

// detach releases the Instance's volumes and network, once its
// containers are gone.
func (r *instanceReconciler) detach(ctx context.Context, inst *skiffv1alpha1.Instance) error {
	if r.volumes != nil {
		if err := r.volumes.remove(inst.UID); err != nil {
			return fmt.Errorf("instance %s/%s: %w", inst.Namespace, inst.Name, err)
		}
	}
	if r.network == nil || inst.Spec.HostNetwork {
		return nil
	}
	if err := r.network.Teardown(ctx, string(inst.UID)); err != nil {
		return fmt.Errorf("instance %s/%s: %w", inst.Namespace, inst.Name, err)
	}
	return nil
}

// hostPorts are the ports the Instance publishes on the node.
func hostPorts(inst *skiffv1alpha1.Instance) []network.Port {
	var out []network.Port
	for _, c := range inst.Spec.Containers {
		for _, p := range c.Ports {
			if p.HostPort != 0 {
				out = append(out, network.Port{HostPort: p.HostPort, ContainerPort: p.ContainerPort, Protocol: string(p.Protocol), HostIP: p.HostIP})
			}
		}
	}
	return out
}

// evictIfOver ends the Instance when one of its emptyDirs holds more than
// its sizeLimit, as the kubelet's eviction manager does: phase Failed,
// reason Evicted, with an Event; its containers are then stopped as for
// any Instance ended by a verdict (endedByController).
func (r *instanceReconciler) evictIfOver(ctx context.Context, inst *skiffv1alpha1.Instance) (bool, error) {
	if r.volumes == nil {
		return false, nil
	}
	msg, err := r.volumes.overLimit(inst)
	if err != nil || msg == "" {
		return false, err
	}
	r.event(ctx, inst, skiffv1alpha1.ReasonEvicted, msg)
	s := &inst.Status
	s.Phase, s.Reason, s.Message = skiffv1alpha1.InstanceFailed, skiffv1alpha1.ReasonEvicted, msg
	meta.SetStatusCondition(&s.Conditions, metav1.Condition{Type: skiffv1alpha1.InstanceReady, Status: metav1.ConditionFalse,
		Reason: skiffv1alpha1.ReasonEvicted, Message: msg, ObservedGeneration: inst.Generation})
	if err := r.written.Write(inst, func() error { return r.client.Status().Update(ctx, inst) }); err != nil {
		return false, fmt.Errorf("instance %s/%s eviction: %w", inst.Namespace, inst.Name, err)
	}
	return true, nil
}
