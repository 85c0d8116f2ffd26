package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/client-go/tools/clientcmd"

	"skiff.dev/skiff/nodeagent"
)

func newAgentCommand() *cobra.Command {
	cfg := nodeagent.DefaultConfig()
	cfg.Runtime = "auto" // as skiff server's local agent
	var servers, taints []string
	var reserved map[string]string
	var simulate int
	var kubeconfig string
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run a node agent: join the cluster, report the node, run its Instances",
		Long: "skiff agent registers this machine as a Node with the join token (once; afterwards it\n" +
			"authenticates with its own Ed25519 key), reports capacity and software in the Node's status,\n" +
			"renews its Lease, and runs the Instances bound to the Node as OCI containers through a\n" +
			"runc-compatible runtime (the first of youki, crun and runc installed; or a path), pulling their images. With\n" +
			"--runtime sim containers are simulated: no process runs and no image is pulled.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			cfg.Server = strings.Join(servers, ",")
			if cfg.Taints, err = nodeagent.ParseTaints(taints); err != nil {
				return err
			}
			if cfg.Reserved, err = nodeagent.ParseResources(reserved); err != nil {
				return err
			}
			cfg.Runtime = localRuntime(cmd.ErrOrStderr(), cfg.Runtime)
			if simulate > 0 {
				rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
				if kubeconfig == "" || err != nil {
					return fmt.Errorf("--simulate-nodes needs --kubeconfig (an admin's): the fleet's shared Instance watch reads every node's Instances: %v", err)
				}
				f, err := nodeagent.NewFleet(cfg, simulate, rc)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "skiff agent simulating %d nodes %s-0..%d joining %s\n", simulate, cfg.NodeName, simulate-1, cfg.Server)
				return f.Run(cmd.Context())
			}
			a, err := nodeagent.New(cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "skiff agent for node %q joining %s\n", cfg.NodeName, cfg.Server)
			return a.Run(cmd.Context())
		},
	}
	fs := cmd.Flags()
	fs.StringSliceVar(&servers, "server", nil, "the API server's https:// URL; several, comma-separated or repeated, for a cluster of servers (the agent fails over among them, and learns the others from the API)")
	fs.StringVar(&cfg.JoinToken, "join-token", cfg.JoinToken, "the join token, or a file holding it (the server's <data-dir>/join-token)")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for the agent's key, images, container logs and runtime state")
	fs.StringVar(&cfg.NodeName, "node-name", cfg.NodeName, "the Node's name")
	fs.StringToStringVar(&cfg.Labels, "labels", cfg.Labels, "labels for the Node, key=value,... (beside kubernetes.io/hostname, os and arch, which the agent sets)")
	addTopologyFlags(fs, &cfg, "")
	fs.StringSliceVar(&taints, "taints", nil, "taints for the Node, key=value:Effect,...")
	fs.StringToStringVar(&reserved, "reserved", nil, "resources kept back from capacity, e.g. cpu=500m,memory=1Gi")
	fs.Int64Var(&cfg.MaxInstances, "max-instances", cfg.MaxInstances, "how many Instances the Node takes")
	fs.DurationVar(&cfg.LeaseInterval, "lease-interval", cfg.LeaseInterval, "how often the Lease is renewed while gossip is off or unhealthy")
	addGossipAgentFlags(fs, &cfg, "")
	fs.DurationVar(&cfg.StatusInterval, "status-interval", cfg.StatusInterval, "how often the Node status is refreshed")
	fs.DurationVar(&cfg.Backoff.Base, "backoff-base", cfg.Backoff.Base, "first crash-loop back-off; it doubles up to 5m")
	fs.IntVar(&simulate, "simulate-nodes", 0, "host this many simulated nodes named <node-name>-0..N-1 (needs --runtime sim and --kubeconfig)")
	fs.StringVar(&kubeconfig, "kubeconfig", "", "with --simulate-nodes: the kubeconfig the fleet's shared Instance watch reads with")
	fs.StringVar(&cfg.Runtime, "runtime", cfg.Runtime, "container runtime: auto (youki, crun or runc, else sim), youki, runc, crun, the path of a runc-compatible binary, or sim")
	fs.StringSliceVar(&cfg.InsecureRegistries, "insecure-registry", cfg.InsecureRegistries, "registries (host:port) pulled from over plain HTTP")
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "address of the agent's HTTPS endpoint (logs for the apiserver, /metrics, /healthz)")
	fs.Int64Var(&cfg.PidsLimit, "pids-limit", cfg.PidsLimit, "most processes in one container; 0 for no limit")
	addSecurityFlags(fs, &cfg, "")
	addNetworkFlags(fs, &cfg, "")
	fs.StringVar(&cfg.ClusterCIDR, "cluster-cidr", cfg.ClusterCIDR, "the control plane's --cluster-cidr: Instances' traffic leaving it is masqueraded")
	fs.DurationVar(&cfg.SimStartDelay, "sim-start-delay", cfg.SimStartDelay, "how long a simulated container takes to start (--runtime sim)")
	fs.Float64Var(&cfg.SimFailureRate, "sim-failure-rate", cfg.SimFailureRate, "share of simulated starts that fail, 0-1 (--runtime sim)")
	return cmd
}

// addGossipAgentFlags adds the agent's gossip flags; prefix is "agent-"
// for the local agent of `skiff server`.
func addGossipAgentFlags(fs *pflag.FlagSet, cfg *nodeagent.Config, prefix string) {
	fs.StringVar(&cfg.GossipBind, prefix+"gossip-bind", cfg.GossipBind, "gossip (memberlist) listen address, host:port, UDP and TCP; empty turns gossip off")
	fs.StringVar(&cfg.GossipAdvertise, prefix+"gossip-advertise", cfg.GossipAdvertise, "address other members reach this one at, ip:port; empty is the node's InternalIP with the bound port")
	fs.StringSliceVar(&cfg.GossipSeeds, prefix+"gossip-seeds", cfg.GossipSeeds, "members to join, host:port,...; empty learns them from the API server")
	fs.DurationVar(&cfg.GossipLeaseInterval, prefix+"gossip-lease-interval", cfg.GossipLeaseInterval, "how often the Lease is renewed while gossip is healthy (the Lease is then the fallback signal)")
	fs.DurationVar(&cfg.FenceAfter, prefix+"fence-after", cfg.FenceAfter, "stop this node's Instances after reaching neither the API server nor any gossip peer for this long; 0 never")
}

// addSecurityFlags adds what the agent lets containers do; prefix is
// "agent-" for the local agent of `skiff server`.
func addSecurityFlags(fs *pflag.FlagSet, cfg *nodeagent.Config, prefix string) {
	fs.BoolVar(&cfg.AllowPrivileged, prefix+"allow-privileged", cfg.AllowPrivileged, "run containers with securityContext.privileged (every capability, no seccomp filter, the node's devices); without it they wait in CreateContainerConfigError")
	fs.BoolVar(&cfg.AllowHostPaths, prefix+"allow-host-paths", cfg.AllowHostPaths, "let Instances mount the node's files and directories (hostPath volumes); without it they wait in ContainerCreating")
}

// addTopologyFlags adds --zone and --region; prefix is "agent-" for the
// local agent of `skiff server`.
func addTopologyFlags(fs *pflag.FlagSet, cfg *nodeagent.Config, prefix string) {
	fs.StringVar(&cfg.Zone, prefix+"zone", cfg.Zone, "the Node's topology.kubernetes.io/zone label, e.g. eu-west-1a (what topology spread and anti-affinity by zone select)")
	fs.StringVar(&cfg.Region, prefix+"region", cfg.Region, "the Node's topology.kubernetes.io/region label, e.g. eu-west-1")
}

// addNetworkFlags adds the agent's networking flags; prefix is "agent-"
// for the server's local agent where a name would be ambiguous.
func addNetworkFlags(fs *pflag.FlagSet, cfg *nodeagent.Config, prefix string) {
	fs.StringVar(&cfg.CNIPluginDir, "cni-plugin-dir", cfg.CNIPluginDir, "directory of the CNI plugins bridge, host-local, portmap and loopback (Debian: apt-get install containernetworking-plugins)")
	fs.StringVar(&cfg.NetNS, prefix+"netns", cfg.NetNS, "network namespace (a path, or a name under /run/netns) for the node's side of Instance networking: bridge, routes, rules, hostPorts and the addresses the Node reports; empty is the agent's own")
}
