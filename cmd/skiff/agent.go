package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"skiff.dev/skiff/nodeagent"
)

func newAgentCommand() *cobra.Command {
	cfg := nodeagent.DefaultConfig()
	var taints []string
	var reserved map[string]string
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run a node agent: join the cluster, report the node, run its Instances",
		Long: "skiff agent registers this machine as a Node with the join token (once; afterwards it\n" +
			"authenticates with its own Ed25519 key), reports capacity and software in the Node's status,\n" +
			"renews its Lease, and runs the Instances bound to the Node. Only the simulated runtime (sim)\n" +
			"exists so far: containers are state machines, no process runs. The OCI runtime is being built.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if cfg.Taints, err = nodeagent.ParseTaints(taints); err != nil {
				return err
			}
			if cfg.Reserved, err = nodeagent.ParseResources(reserved); err != nil {
				return err
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
	fs.StringVar(&cfg.Server, "server", cfg.Server, "the apiserver's https:// URL")
	fs.StringVar(&cfg.JoinToken, "join-token", cfg.JoinToken, "the join token, or a file holding it (the server's <data-dir>/join-token)")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for the agent's key")
	fs.StringVar(&cfg.NodeName, "node-name", cfg.NodeName, "the Node's name")
	fs.StringToStringVar(&cfg.Labels, "labels", cfg.Labels, "labels for the Node, key=value,...")
	fs.StringSliceVar(&taints, "taints", nil, "taints for the Node, key=value:Effect,...")
	fs.StringToStringVar(&reserved, "reserved", nil, "resources kept back from capacity, e.g. cpu=500m,memory=1Gi")
	fs.Int64Var(&cfg.MaxInstances, "max-instances", cfg.MaxInstances, "how many Instances the Node takes")
	fs.DurationVar(&cfg.LeaseInterval, "lease-interval", cfg.LeaseInterval, "how often the Lease is renewed")
	fs.DurationVar(&cfg.StatusInterval, "status-interval", cfg.StatusInterval, "how often the Node status is refreshed")
	fs.DurationVar(&cfg.Backoff.Base, "backoff-base", cfg.Backoff.Base, "first crash-loop back-off; it doubles up to 5m")
	fs.StringVar(&cfg.Runtime, "runtime", cfg.Runtime, "container runtime; only sim (simulated containers) so far")
	return cmd
}
