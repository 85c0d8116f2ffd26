package nodeagent

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"

	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/gossip"
)

// gossipKeyringFile holds the gossip keys under the data dir (0600).
const gossipKeyringFile = "gossip.keyring"

// routeIP is this machine's address on the route to the API server: the
// interface gossip with the control plane goes out of, and stable across
// restarts (unlike the list of addresses, which Instance bridges join).
// When that is loopback (a local agent), gossip.LocalIP.
func routeIP(server string) string {
	u, err := url.Parse(server)
	if err != nil {
		return gossip.LocalIP()
	}
	port := u.Port()
	if port == "" {
		port = "443"
	}
	conn, err := net.Dial("udp", net.JoinHostPort(u.Hostname(), port)) // sends nothing
	if err != nil {
		return gossip.LocalIP()
	}
	defer conn.Close()
	ip := conn.LocalAddr().(*net.UDPAddr).IP
	if ip.IsLoopback() {
		return gossip.LocalIP()
	}
	return ip.String()
}

// newMembership makes this node's gossip member: the keys come from the
// API server over the node's authenticated connection (and are kept in
// the data dir), the seeds from --gossip-seeds or, without them, from the
// API server (the control plane's address) and every Node's
// status.gossipAddress. nodes reads Nodes (the manager's cache).
func (a *Agent) newMembership(ctx context.Context, j *joined, m *Machine, nodes client.Reader) (*gossip.Membership, error) {
	info, err := gossip.Fetch(ctx, j.http, j.servers.Current(), gossip.APIPath)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(a.cfg.DataDir, gossipKeyringFile)
	var kr *gossip.Keyring
	if _, statErr := os.Stat(path); statErr == nil {
		if kr, err = gossip.LoadKeyring(path); err == nil {
			err = kr.Replace(info.Keys) // catch up with rotations made while away
		}
	} else {
		kr, err = gossip.NewKeyring(path, info.Keys)
	}
	if err != nil {
		return nil, err
	}
	seeds := func(ctx context.Context) ([]string, error) {
		if len(a.cfg.GossipSeeds) > 0 {
			return a.cfg.GossipSeeds, nil
		}
		out := slices.Clone(info.Seeds)
		var list skiffv1alpha1.NodeList
		if err := nodes.List(ctx, &list); err != nil {
			return out, nil // the control plane alone is enough to join
		}
		for _, n := range list.Items {
			if n.Name != a.cfg.NodeName && n.Status.GossipAddress != "" {
				out = append(out, n.Status.GossipAddress)
			}
		}
		return out, nil
	}
	advertiseIP := routeIP(j.servers.Current())
	mem, err := gossip.New(gossip.Config{
		Name: a.cfg.NodeName, Role: gossip.RoleNode, PublicKey: j.id.PublicKeyString(),
		Bind: a.cfg.GossipBind, Advertise: a.cfg.GossipAdvertise, AdvertiseIP: advertiseIP,
		Keyring: kr, Seeds: seeds, Timing: gossip.DefaultTiming(),
	})
	if err != nil {
		return nil, fmt.Errorf("gossip: %w", err)
	}
	return mem, nil
}
