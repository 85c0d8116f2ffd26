// Package network gives each Instance a network namespace of its own and
// an address in its node's instanceCIDR, with the reference CNI plugins
// driven through libcni: a bridge (skiff0) on the node with host-local
// address management, portmap for hostPorts, and loopback. Between nodes
// it installs host-gateway routes (each other node's subnet via that
// node's address) and masquerades what leaves the cluster CIDR.
//
// Everything the node side does (the bridge, routes, rules, plugins'
// processes) happens in the host network namespace: the agent's own, or
// another one named by Config.HostNetNS, so that several agents can act as
// separate hosts on one machine.
package network
