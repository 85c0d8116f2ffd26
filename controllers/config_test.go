package controllers_test

import (
	"net/netip"
	"strings"
	"testing"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/controllers"
)

func TestConfigValidateIPAM(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*controllers.Config)
		want string
	}{
		{"defaults", func(*controllers.Config) {}, ""},
		{"wide cluster CIDR", func(c *controllers.Config) { c.ClusterCIDR = "10.0.0.0/8" }, ""},
		{"not canonical", func(c *controllers.Config) { c.ClusterCIDR = "10.88.1.0/16" }, "--cluster-cidr"},
		{"IPv6", func(c *controllers.Config) { c.ClusterCIDR = "fd00::/48" }, "--cluster-cidr"},
		{"mask shorter than the cluster's", func(c *controllers.Config) { c.NodeCIDRMaskSize = 8 }, "--node-cidr-mask-size"},
		{"mask past /29", func(c *controllers.Config) { c.NodeCIDRMaskSize = 30 }, "--node-cidr-mask-size"},
	} {
		cfg := controllers.DefaultConfig()
		tc.set(&cfg)
		err := cfg.Validate()
		if (err == nil) != (tc.want == "") || err != nil && !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %q", tc.name, err, tc.want)
		}
	}
}

// TestNodesGetInstanceCIDRs: the agents' Nodes get distinct subnets of
// the cluster CIDR from the controllers.
func TestNodesGetInstanceCIDRs(t *testing.T) {
	cfg := controllers.DefaultConfig()
	cfg.ClusterCIDR, cfg.NodeCIDRMaskSize = "10.123.0.0/22", 24
	p := startPlane(t, 3, cfg)
	cluster := netip.MustParsePrefix(cfg.ClusterCIDR)
	eventually(t, "three Nodes with distinct subnets of "+cfg.ClusterCIDR, func() bool {
		var list skiffv1alpha1.NodeList
		if p.admin.List(p.ctx, &list) != nil {
			return false
		}
		seen := map[string]bool{}
		for _, n := range list.Items {
			sub, err := netip.ParsePrefix(n.Spec.InstanceCIDR)
			if err != nil || sub.Bits() != 24 || !cluster.Contains(sub.Addr()) || seen[n.Spec.InstanceCIDR] {
				return false
			}
			seen[n.Spec.InstanceCIDR] = true
		}
		return len(seen) == 3
	})
}
