package scheduler

import (
	"net/netip"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// ReasonPortsTaken is the NodePorts filter's reason, worded as
// kube-scheduler's so that the no-fit message reads the same: "0/3 nodes
// are available: 3 node(s) didn't have free ports for the requested
// instance ports."
const ReasonPortsTaken = "node(s) didn't have free ports for the requested instance ports"

// hostPort is a port an Instance publishes on its node's addresses.
type hostPort struct {
	port     int32
	protocol skiffv1alpha1.Protocol
	// ip is the node address; the zero Addr is every address.
	ip netip.Addr
}

// conflicts reports whether two published ports cannot share a node: the
// same port and protocol on the same address, or on every address.
func (p hostPort) conflicts(q hostPort) bool {
	return p.port == q.port && p.protocol == q.protocol && (!p.ip.IsValid() || !q.ip.IsValid() || p.ip == q.ip)
}

func newHostPort(p *skiffv1alpha1.ContainerPort) hostPort {
	hp := hostPort{port: p.HostPort, protocol: p.Protocol}
	if hp.protocol == "" {
		hp.protocol = skiffv1alpha1.ProtocolTCP // the API's default
	}
	if ip, err := netip.ParseAddr(p.HostIP); err == nil && !ip.IsUnspecified() {
		hp.ip = ip.Unmap()
	}
	return hp
}

// appendHostPorts appends the ports inst publishes on its node. Only
// hostPort counts: with hostNetwork the API requires hostPort to equal
// containerPort, so a published port always names it.
func appendHostPorts(dst []hostPort, inst *skiffv1alpha1.Instance) []hostPort {
	for i := range inst.Spec.Containers {
		ports := inst.Spec.Containers[i].Ports
		for j := range ports {
			if ports[j].HostPort != 0 {
				dst = append(dst, newHostPort(&ports[j]))
			}
		}
	}
	return dst
}

// nodePorts rules out nodes where an Instance placed (bound, assumed or
// nominated) publishes a host port that conflicts with one inst asks for.
// It costs a length check on nodes without published ports.
func nodePorts(c *cycle, n *NodeInfo) string {
	if len(n.hostPorts) == 0 || !c.hasPorts {
		return ""
	}
	inst := c.inst
	for i := range inst.Spec.Containers {
		ports := inst.Spec.Containers[i].Ports
		for j := range ports {
			if ports[j].HostPort == 0 {
				continue
			}
			want := newHostPort(&ports[j])
			for _, used := range n.hostPorts {
				if want.conflicts(used) {
					return ReasonPortsTaken
				}
			}
		}
	}
	return ""
}
