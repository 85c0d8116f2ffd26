package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/log"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/nodeagent/network"
)

// networkRetry is how soon an Instance waiting for its network is
// looked at again.
const networkRetry = 2 * time.Second

// sandbox is where an Instance's containers run: the network namespace
// they share (empty: a new one, or the runtime's own with hostNetwork)
// and the Instance's address.
type sandbox struct {
	netns, ip string
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

// detach releases the Instance's network, once its containers are gone.
func (r *instanceReconciler) detach(ctx context.Context, inst *skiffv1alpha1.Instance) error {
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
