package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"skiff.dev/skiff/apiserver"
	"skiff.dev/skiff/apiserver/serverlist"
	"skiff.dev/skiff/gossip"
)

// controlPlaneGossipPort is the control plane member's default port; an
// agent on the same machine takes gossip.DefaultPort.
const controlPlaneGossipPort = gossip.DefaultPort - 1

// gossipKeyringFile holds the cluster's gossip keys in the server's data dir.
const gossipKeyringFile = "gossip.keyring"

// gossipFlags are a control plane process's gossip flags.
type gossipFlags struct {
	bind, advertise string
	seeds           []string
}

func addGossipFlags(fs *pflag.FlagSet, f *gossipFlags) {
	f.bind = fmt.Sprintf("0.0.0.0:%d", controlPlaneGossipPort)
	fs.StringVar(&f.bind, "gossip-bind", f.bind, "the control plane's gossip (memberlist) listen address, host:port, UDP and TCP; empty turns gossip off (nodes are judged by their Leases alone)")
	fs.StringVar(&f.advertise, "gossip-advertise", "", "address members reach the control plane at, ip:port; empty is the bind address or a private address of this machine")
	fs.StringSliceVar(&f.seeds, "gossip-seeds", nil, "members to join, host:port,... (agents join the control plane by themselves)")
}

// member makes the control plane member name. listen is the API server's
// address: bound to all interfaces, the member advertises its IP when it
// is a specific one (agents reach that), else gossip.LocalIP. It joins
// --gossip-seeds and the seeds more returns (nil: none).
func (f *gossipFlags) member(name, listen string, kr *gossip.Keyring, more func(context.Context) ([]string, error)) (*gossip.Membership, error) {
	ip := gossip.LocalIP()
	if h, _, err := net.SplitHostPort(listen); err == nil {
		if a := net.ParseIP(h); a != nil && !a.IsUnspecified() && !a.IsLoopback() {
			ip = a.String()
		}
	}
	return gossip.New(gossip.Config{
		Name: name, Role: gossip.RoleControlPlane,
		Bind: f.bind, Advertise: f.advertise, AdvertiseIP: ip, Keyring: kr, Timing: gossip.DefaultTiming(),
		Seeds: func(ctx context.Context) ([]string, error) {
			seeds := slices.Clone(f.seeds)
			if more == nil {
				return seeds, nil
			}
			found, err := more(ctx)
			return append(seeds, found...), err
		},
	})
}

// serverGossip makes the API server's process a member: the keyring is
// made at first start (0600 in the data dir), the keys and this member's
// address are served to nodes at gossip.APIPath, and its metrics and
// health join the server's. It returns nil with gossip off.
func serverGossip(srv *apiserver.Server, cfg apiserver.Config, f gossipFlags) (*gossip.Membership, error) {
	if f.bind == "" {
		return nil, nil
	}
	kr, _, err := gossip.LoadOrCreateKeyring(filepath.Join(cfg.DataDir, gossipKeyringFile))
	if err != nil {
		return nil, err
	}
	// The other servers of a cluster are found from their Leases (the
	// list of servers), which carry their gossip addresses.
	rc, err := srv.AdminConfig()
	if err != nil {
		return nil, err
	}
	c, err := client.New(rc, client.Options{})
	if err != nil {
		return nil, fmt.Errorf("gossip: %w", err)
	}
	var self atomic.Value
	self.Store("")
	others := func(ctx context.Context) ([]string, error) {
		return serverlist.GossipSeeds(ctx, c, self.Load().(string), time.Now())
	}
	m, err := f.member(gossip.ControlPlanePrefix+cfg.Name, cfg.Listen, kr, others)
	if err != nil {
		return nil, fmt.Errorf("--gossip-bind: %w", err)
	}
	self.Store(m.Addr())
	srv.AddHandler(gossip.APIPath, gossip.Handler(gossip.APIPath, m))
	addGossipObservability(srv, m)
	return m, nil
}

// addGossipObservability puts the member's metrics on /metrics and the
// seed's "cluster" component on /health.
func addGossipObservability(srv *apiserver.Server, m *gossip.Membership) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.Collector())
	srv.AddMetrics(reg)
	srv.AddHealthReport("cluster", func(context.Context) (any, error) { return clusterHealth(m), nil })
}

// clusterHealth is the /health "cluster" component's detail.
func clusterHealth(m *gossip.Membership) map[string]any {
	states := map[gossip.State]int{}
	for _, mem := range m.Members() {
		states[mem.State]++
	}
	return map[string]any{"member": m.Name(), "address": m.Addr(), "members": states, "healthScore": m.HealthScore()}
}

// controllersGossip makes `skiff controllers` a member: the keys and the
// server's address come from the API server.
func controllersGossip(ctx context.Context, rc *rest.Config, f gossipFlags) (*gossip.Membership, error) {
	if f.bind == "" {
		return nil, nil
	}
	hc, err := rest.HTTPClientFor(rc)
	if err != nil {
		return nil, err
	}
	info, err := gossip.Fetch(ctx, hc, rc.Host, gossip.APIPath)
	if err != nil {
		return nil, err
	}
	kr, err := gossip.NewKeyring("", info.Keys) // rotations reach it over gossip; a restart fetches again
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	seeds := info.Seeds
	return f.member(gossip.ControlPlanePrefix+host+"/controllers-"+strconv.Itoa(os.Getpid()), "", kr,
		func(context.Context) ([]string, error) { return seeds, nil })
}

// newGossipCommand is `skiff gossip`: the cluster's gossip key.
func newGossipCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "gossip", Short: "Manage the gossip cluster (its encryption key)"}
	var cf clientFlags
	rotate := &cobra.Command{
		Use:   "rotate-key",
		Short: "Install a new gossip key on every member, switch to it, and remove the old one",
		Long: "skiff gossip rotate-key asks the API server's gossip member to make a new AES-256 key and\n" +
			"roll it out: installed everywhere, then used everywhere, then the old key removed, each step\n" +
			"confirmed by every alive member, so no member stops understanding another. Members that are\n" +
			"down meanwhile take the new key from the API server when they come back.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rc, _, err := cf.config()
			if err != nil {
				return err
			}
			rc = rest.CopyConfig(rc)
			rc.Timeout = 0
			hc, err := rest.HTTPClientFor(rc)
			if err != nil {
				return err
			}
			res, err := gossip.RequestRotation(cmd.Context(), hc, rc.Host, gossip.APIPath)
			if err != nil {
				return err
			}
			return json.NewEncoder(cmd.OutOrStdout()).Encode(res)
		},
	}
	rotate.Flags().StringVar(&cf.kubeconfig, "kubeconfig", "", "an admin kubeconfig (default $KUBECONFIG, ~/.kube/config, or the local server's admin.kubeconfig)")
	addServerFlag(rotate.Flags(), &cf)
	cmd.AddCommand(rotate)
	return cmd
}
