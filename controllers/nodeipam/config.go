package nodeipam

import (
	"fmt"
	"net/netip"
)

// Config says what the Nodes' subnets are cut from.
type Config struct {
	// ClusterCIDR is the IPv4 network all Nodes' subnets come from, in
	// canonical form (--cluster-cidr).
	ClusterCIDR string
	// NodeCIDRMaskSize is the prefix length of each Node's subnet, at
	// least ClusterCIDR's and at most 29 (--node-cidr-mask-size). The
	// cluster holds 2^(NodeCIDRMaskSize - prefix length) Nodes.
	NodeCIDRMaskSize int
}

// Defaults: 256 Nodes of up to 253 Instances each.
const (
	DefaultClusterCIDR      = "10.88.0.0/16"
	DefaultNodeCIDRMaskSize = 24
)

// MaxNodeCIDRMaskSize leaves a Node a gateway and at least one Instance
// address besides the network and broadcast ones, as the API requires.
const MaxNodeCIDRMaskSize = 29

// maxSubnetBits bounds the number of subnets (2^24, a 2 MiB bitmap): a
// cluster CIDR wider than any fleet needs is refused, not allocated.
const maxSubnetBits = 24

// DefaultConfig returns the defaults of `skiff server`.
func DefaultConfig() Config {
	return Config{ClusterCIDR: DefaultClusterCIDR, NodeCIDRMaskSize: DefaultNodeCIDRMaskSize}
}

// Validate reports the first invalid field, named by its flag.
func (c Config) Validate() error {
	_, err := c.prefix()
	return err
}

// prefix parses and checks the cluster CIDR against the mask size.
func (c Config) prefix() (netip.Prefix, error) {
	p, err := netip.ParsePrefix(c.ClusterCIDR)
	switch {
	case err != nil || !p.Addr().Is4():
		return netip.Prefix{}, fmt.Errorf("--cluster-cidr %q: must be an IPv4 CIDR such as %s", c.ClusterCIDR, DefaultClusterCIDR)
	case p.Masked() != p:
		return netip.Prefix{}, fmt.Errorf("--cluster-cidr %q: must be in canonical form, %s", c.ClusterCIDR, p.Masked())
	case c.NodeCIDRMaskSize < p.Bits() || c.NodeCIDRMaskSize > MaxNodeCIDRMaskSize:
		return netip.Prefix{}, fmt.Errorf("--node-cidr-mask-size %d: must be between the --cluster-cidr prefix length %d and %d",
			c.NodeCIDRMaskSize, p.Bits(), MaxNodeCIDRMaskSize)
	case c.NodeCIDRMaskSize-p.Bits() > maxSubnetBits:
		return netip.Prefix{}, fmt.Errorf("--node-cidr-mask-size %d: at most %d more than the --cluster-cidr prefix length %d (%d subnets)",
			c.NodeCIDRMaskSize, maxSubnetBits, p.Bits(), 1<<maxSubnetBits)
	}
	return p, nil
}
