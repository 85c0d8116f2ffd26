package nodeagent

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/validation"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/gossip"
	"skiff.dev/skiff/internal/failover"
	"skiff.dev/skiff/internal/xdg"
	"skiff.dev/skiff/nodeagent/network"
)

// Config configures an agent. Every field maps to a flag of `skiff agent`.
type Config struct {
	// Server is the API server's https:// URL, or several, comma-separated
	// (--server): the agent fails over among them, learns the cluster's
	// live servers from the API while it runs, and keeps what it learned
	// in DataDir for its next start.
	Server string
	// JoinToken is the join token, or the path of a file holding it (--join-token).
	JoinToken string
	// DataDir holds the agent's key (--data-dir).
	DataDir string
	// NodeName is the Node to register; defaults to the host name (--node-name).
	NodeName string
	// Labels are set on the Node (--labels), beside the well-known ones
	// the agent sets itself (kubernetes.io/hostname, os and arch).
	Labels map[string]string
	// Zone and Region are the Node's topology.kubernetes.io/zone and
	// topology.kubernetes.io/region labels (--zone, --region); empty
	// leaves the label out.
	Zone, Region string
	// Taints are set on the Node (--taints).
	Taints []skiffv1alpha1.Taint
	// Reserved is kept back from capacity for the system (--reserved).
	Reserved corev1.ResourceList
	// MaxInstances is the Node's instance capacity (--max-instances).
	MaxInstances int64
	// LeaseInterval is how often the Lease is renewed while gossip is off
	// or unhealthy (--lease-interval).
	LeaseInterval time.Duration
	// GossipLeaseInterval is how often the Lease is renewed while gossip
	// is healthy (--gossip-lease-interval): gossip is then the heartbeat
	// and the Lease the fallback signal.
	GossipLeaseInterval time.Duration
	// GossipBind is the gossip (memberlist) listen address, host:port,
	// UDP and TCP (--gossip-bind); empty turns gossip off.
	GossipBind string
	// GossipAdvertise is the address others reach this member at
	// (--gossip-advertise); empty is the node's InternalIP with the bound
	// port.
	GossipAdvertise string
	// GossipSeeds are members to join (--gossip-seeds); empty learns them
	// from the API server: the control plane's and the other Nodes'
	// status.gossipAddress.
	GossipSeeds []string
	// FenceAfter is how long the agent may reach neither the API server
	// nor any gossip peer before it stops its Instances itself
	// (--fence-after; 0 never fences). It is shorter than the time the
	// control plane needs to declare the node dead (about 4 s), so that a
	// replacement does not run beside the original.
	FenceAfter time.Duration
	// StatusInterval is how often the Node status is refreshed (--status-interval).
	StatusInterval time.Duration
	// Backoff is the crash-loop back-off of restarted containers
	// (--backoff-base; the cap is 5 minutes).
	Backoff Backoff
	// Runtime names the container runtime (--runtime): youki, runc, crun
	// or the path of another runc-compatible binary, or sim for simulated
	// containers (no processes, no images).
	Runtime string
	// SimStartDelay and SimFailureRate tune the sim runtime
	// (--sim-start-delay, --sim-failure-rate).
	SimStartDelay  time.Duration
	SimFailureRate float64
	// InsecureRegistries are reached over plain HTTP (--insecure-registry).
	InsecureRegistries []string
	// Listen is the address of the agent's HTTPS endpoint, which serves
	// logs to the apiserver, /metrics and /healthz (--listen).
	Listen string
	// PidsLimit caps each container's processes; 0 is no limit (--pids-limit).
	PidsLimit int64
	// AllowPrivileged lets containers with securityContext.privileged run
	// (--allow-privileged): every capability, no seccomp filter, the
	// node's devices. Without it they wait in CreateContainerConfigError.
	AllowPrivileged bool
	// AllowHostPaths lets Instances mount the node's files and
	// directories (hostPath volumes, --allow-host-paths). Without it they
	// wait in ContainerCreating saying so.
	AllowHostPaths bool
	// CNIPluginDir holds the CNI plugins: bridge, host-local, portmap,
	// loopback (--cni-plugin-dir).
	CNIPluginDir string
	// ClusterCIDR is the network every node's instanceCIDR is cut from;
	// Instances' traffic to it is not masqueraded (--cluster-cidr, the
	// same as the control plane's).
	ClusterCIDR string
	// NetNS is the network namespace the node's side of Instance
	// networking lives in: bridge, routes, rules, hostPorts, and the
	// addresses the Node reports. A path or a name of `ip netns`; empty is
	// the agent's own (--netns). It lets several agents act as separate
	// hosts on one machine.
	NetNS string
}

// DefaultClusterCIDR is the control plane's default --cluster-cidr.
const DefaultClusterCIDR = "10.88.0.0/16"

// DefaultDataDir is /var/lib/skiff/agent for root, else under the XDG data home.
func DefaultDataDir() string { return xdg.DataDir("agent") }

// DefaultConfig returns the defaults of `skiff agent`.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		DataDir:             DefaultDataDir(),
		NodeName:            host,
		MaxInstances:        110,
		LeaseInterval:       5 * time.Second,
		GossipLeaseInterval: 40 * time.Second,
		GossipBind:          fmt.Sprintf("0.0.0.0:%d", gossip.DefaultPort),
		FenceAfter:          3 * time.Second,
		StatusInterval:      time.Minute,
		Runtime:             "youki",
		Backoff:             DefaultBackoff,
		Listen:              ":10250",
		PidsLimit:           4096,
		CNIPluginDir:        network.DefaultPluginDir,
		ClusterCIDR:         DefaultClusterCIDR,
	}
}

// Validate reports the first invalid field, named by its flag.
func (c *Config) Validate() error {
	servers := failover.Split(c.Server)
	if len(servers) == 0 {
		return errors.New("--server: must name the API server, https://host:port (several: comma-separated or repeated)")
	}
	for _, s := range servers {
		if _, err := failover.Normalize(s); err != nil {
			return fmt.Errorf("--server %q: must be an https:// URL", s)
		}
	}
	if c.JoinToken == "" {
		return errors.New("--join-token: must not be empty (the server's <data-dir>/join-token, or its contents)")
	}
	if c.DataDir == "" {
		return errors.New("--data-dir: must not be empty")
	}
	if msgs := validation.NameIsDNSSubdomain(c.NodeName, false); len(msgs) > 0 {
		return fmt.Errorf("--node-name %q: %s", c.NodeName, msgs[0])
	}
	if err := validateTopology(c); err != nil {
		return err
	}
	if c.LeaseInterval <= 0 {
		return fmt.Errorf("--lease-interval %s: must be positive", c.LeaseInterval)
	}
	if c.GossipLeaseInterval < c.LeaseInterval {
		return fmt.Errorf("--gossip-lease-interval %s: must be at least --lease-interval %s", c.GossipLeaseInterval, c.LeaseInterval)
	}
	if c.FenceAfter < 0 {
		return fmt.Errorf("--fence-after %s: must not be negative", c.FenceAfter)
	}
	if c.GossipBind != "" {
		if _, _, err := net.SplitHostPort(c.GossipBind); err != nil {
			return fmt.Errorf("--gossip-bind %q: %w", c.GossipBind, err)
		}
	}
	if c.GossipAdvertise != "" {
		if _, err := netip.ParseAddrPort(c.GossipAdvertise); err != nil {
			return fmt.Errorf("--gossip-advertise %q: want ip:port", c.GossipAdvertise)
		}
	}
	for _, s := range c.GossipSeeds {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return fmt.Errorf("--gossip-seeds %q: want host:port", s)
		}
	}
	if c.StatusInterval <= 0 {
		return fmt.Errorf("--status-interval %s: must be positive", c.StatusInterval)
	}
	if c.Runtime == "" {
		return errors.New("--runtime: must name youki, runc, crun, sim or a runtime binary")
	}
	if c.SimFailureRate < 0 || c.SimFailureRate > 1 {
		return fmt.Errorf("--sim-failure-rate %v: must be between 0 and 1", c.SimFailureRate)
	}
	if c.SimStartDelay < 0 {
		return fmt.Errorf("--sim-start-delay %s: must not be negative", c.SimStartDelay)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("--listen %q: %w", c.Listen, err)
	}
	if c.PidsLimit < 0 {
		return fmt.Errorf("--pids-limit %d: must not be negative", c.PidsLimit)
	}
	if c.Backoff.Base <= 0 || c.Backoff.Max < c.Backoff.Base {
		return fmt.Errorf("--backoff-base %s: must be positive and at most %s", c.Backoff.Base, c.Backoff.Max)
	}
	if p, err := netip.ParsePrefix(c.ClusterCIDR); err != nil || !p.Addr().Is4() || p.Masked() != p {
		return fmt.Errorf("--cluster-cidr %q: must be an IPv4 network such as %s", c.ClusterCIDR, DefaultClusterCIDR)
	}
	if c.CNIPluginDir == "" {
		return errors.New("--cni-plugin-dir: must not be empty")
	}
	if c.MaxInstances <= 0 {
		return fmt.Errorf("--max-instances %d: must be positive", c.MaxInstances)
	}
	return nil
}
