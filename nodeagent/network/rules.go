package network

import (
	"fmt"
	"net/netip"

	"github.com/coreos/go-iptables/iptables"
)

// The node's own chains: what the CNI chain does not do for a routed
// cluster.
const (
	masqChain    = "SKIFF-POSTROUTING"
	forwardChain = "SKIFF-FORWARD"
)

type chainRules struct {
	table, chain, hook string
	rules              [][]string
}

// nodeRules are the node's rules: traffic from its Instances leaving the
// cluster CIDR is masqueraded to the node's address (within the cluster,
// Instances see each other's own addresses), and the cluster CIDR is
// forwarded even where the FORWARD policy drops (as Docker sets it).
func nodeRules(subnet, cluster netip.Prefix) []chainRules {
	return []chainRules{
		{table: "nat", chain: masqChain, hook: "POSTROUTING", rules: [][]string{
			{"-s", subnet.String(), "!", "-d", cluster.String(), "-m", "comment", "--comment", "skiff: instances leaving the cluster", "-j", "MASQUERADE"},
		}},
		{table: "filter", chain: forwardChain, hook: "FORWARD", rules: [][]string{
			{"-s", cluster.String(), "-m", "comment", "--comment", "skiff: from instances", "-j", "ACCEPT"},
			{"-d", cluster.String(), "-m", "comment", "--comment", "skiff: to instances", "-j", "ACCEPT"},
		}},
	}
}

// ensureRules makes the node's chains hold exactly nodeRules and be
// jumped to, in the current network namespace. Rules already right are
// not rewritten.
func ensureRules(subnet, cluster netip.Prefix) error {
	ipt, err := iptables.New()
	if err != nil {
		return fmt.Errorf("iptables: %w (install it: apt-get install -y iptables)", err)
	}
	for _, c := range nodeRules(subnet, cluster) {
		if err := ensureChain(ipt, c); err != nil {
			return fmt.Errorf("iptables %s %s: %w", c.table, c.chain, err)
		}
	}
	return nil
}

func ensureChain(ipt *iptables.IPTables, c chainRules) error {
	exists, err := ipt.ChainExists(c.table, c.chain)
	if err != nil {
		return err
	}
	if !exists {
		if err := ipt.NewChain(c.table, c.chain); err != nil {
			return err
		}
	}
	if ok, err := chainHolds(ipt, c); err != nil {
		return err
	} else if !ok {
		if err := ipt.ClearChain(c.table, c.chain); err != nil {
			return err
		}
		for _, r := range c.rules {
			if err := ipt.Append(c.table, c.chain, r...); err != nil {
				return err
			}
		}
	}
	jump := []string{"-m", "comment", "--comment", "skiff", "-j", c.chain}
	if ok, err := ipt.Exists(c.table, c.hook, jump...); err != nil {
		return err
	} else if !ok {
		return ipt.Insert(c.table, c.hook, 1, jump...)
	}
	return nil
}

// chainHolds reports whether the chain has exactly c's rules.
func chainHolds(ipt *iptables.IPTables, c chainRules) (bool, error) {
	lines, err := ipt.List(c.table, c.chain)
	if err != nil {
		return false, err
	}
	if len(lines) != len(c.rules)+1 { // the first line is -N CHAIN
		return false, nil
	}
	for _, r := range c.rules {
		if ok, err := ipt.Exists(c.table, c.chain, r...); err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}
