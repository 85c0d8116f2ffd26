package network

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// routeProtocol marks the routes skiff installs (rtnetlink's protocol
// field), so that they are found again after a restart and no other
// route is ever touched.
const routeProtocol netlink.RouteProtocol = 83

// Peer is another node: its subnet is reached through its address.
type Peer struct {
	Name    string
	Subnet  netip.Prefix
	Address netip.Addr
}

// SetPeers makes the node's routes to other nodes' subnets exactly
// peers (host-gateway routing: the nodes share a link). Peers without a
// subnet or an address, the node's own subnet, and subnets outside the
// cluster CIDR (an admin's, which could cover the node's own networks)
// are skipped; a destination that already has a route of someone else's
// is left to it and reported.
func (m *Manager) SetPeers(peers []Peer) error {
	own := m.Subnet()
	h, err := m.netlinkHandle()
	if err != nil {
		return err
	}
	defer h.Close()
	want := map[netip.Prefix]netip.Addr{}
	var errs []error
	for _, p := range peers {
		if !p.Subnet.IsValid() || !p.Address.IsValid() || p.Subnet == own || !p.Address.Is4() {
			continue
		}
		if !m.cfg.ClusterCIDR.Contains(p.Subnet.Addr()) || p.Subnet.Bits() < m.cfg.ClusterCIDR.Bits() {
			errs = append(errs, fmt.Errorf("node %s: instanceCIDR %s is outside --cluster-cidr %s: not routed", p.Name, p.Subnet, m.cfg.ClusterCIDR))
			continue
		}
		want[p.Subnet] = p.Address
	}
	for subnet, gw := range want {
		existing, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Dst: ipNet(subnet)}, netlink.RT_FILTER_DST)
		if err != nil {
			errs = append(errs, fmt.Errorf("routes to %s: %w", subnet, err))
			continue
		}
		if i := slices.IndexFunc(existing, func(r netlink.Route) bool { return r.Protocol != routeProtocol }); i >= 0 {
			errs = append(errs, fmt.Errorf("route to %s: the node already routes it (%s), not through skiff", subnet, existing[i].String()))
			continue
		}
		r := &netlink.Route{Dst: ipNet(subnet), Gw: net.IP(gw.AsSlice()), Protocol: routeProtocol}
		if err := h.RouteReplace(r); err != nil {
			errs = append(errs, fmt.Errorf("route to %s via %s: %w", subnet, gw, err))
		}
	}
	routes, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Protocol: routeProtocol}, netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("list routes: %w", err))...)
	}
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		subnet, ok := prefixOf(r.Dst)
		if _, wanted := want[subnet]; ok && wanted {
			continue
		}
		if err := h.RouteDel(&r); err != nil {
			errs = append(errs, fmt.Errorf("remove route %s: %w", r.Dst, err))
		}
	}
	return errors.Join(errs...)
}

// Routes lists the routes SetPeers installed: subnet to gateway.
func (m *Manager) Routes() (map[netip.Prefix]netip.Addr, error) {
	h, err := m.netlinkHandle()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	routes, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Protocol: routeProtocol}, netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	out := map[netip.Prefix]netip.Addr{}
	for _, r := range routes {
		subnet, ok := prefixOf(r.Dst)
		gw, ok2 := netip.AddrFromSlice(r.Gw.To4())
		if ok && ok2 {
			out[subnet] = gw
		}
	}
	return out, nil
}

func (m *Manager) netlinkHandle() (*netlink.Handle, error) {
	if m.cfg.HostNetNS == "" {
		return netlink.NewHandle()
	}
	ns, err := netns.GetFromPath(m.cfg.HostNetNS)
	if err != nil {
		return nil, fmt.Errorf("network namespace %s: %w", m.cfg.HostNetNS, err)
	}
	defer ns.Close()
	return netlink.NewHandleAt(ns)
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	addr, ok := netip.AddrFromSlice(n.IP.To4())
	if !ok {
		return netip.Prefix{}, false
	}
	bits, _ := n.Mask.Size()
	return netip.PrefixFrom(addr, bits), true
}
