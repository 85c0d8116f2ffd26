package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/klog/v2"

	"skiff.dev/skiff/apiserver"
	"skiff.dev/skiff/controllers"
	"skiff.dev/skiff/controllers/scheduler"
	"skiff.dev/skiff/gossip"
)

func addControllerFlags(fs *pflag.FlagSet, cfg *controllers.Config) {
	fs.Var((*strategyFlag)(&cfg.Scoring), "scoring", "how the scheduler packs: spread (least allocated) or binpack (most allocated)")
	fs.DurationVar(&cfg.NodeGracePeriod, "node-grace-period", cfg.NodeGracePeriod, "how long a node may miss Lease renewals before it is unreachable and tainted")
	fs.StringVar(&cfg.ClusterCIDR, "cluster-cidr", cfg.ClusterCIDR, "IPv4 network the Nodes' instance subnets are allocated from")
	fs.IntVar(&cfg.NodeCIDRMaskSize, "node-cidr-mask-size", cfg.NodeCIDRMaskSize, "prefix length of each Node's instance subnet (the cluster CIDR holds 2^(size - its prefix length) Nodes)")
	fs.IntVar(&cfg.Workers, "workers", cfg.Workers, "Workloads reconciled at once")
	fs.IntVar(&cfg.Concurrency, "concurrency", cfg.Concurrency, "writes in flight per Workload reconciliation")
	fs.Float32Var(&cfg.QPS, "kube-api-qps", cfg.QPS, "requests per second the controllers may send the API server")
	fs.IntVar(&cfg.Burst, "kube-api-burst", cfg.Burst, "requests the controllers may send the API server in a burst")
}

// strategyFlag is a scheduler.Strategy as a flag value.
type strategyFlag scheduler.Strategy

func (f *strategyFlag) String() string     { return string(*f) }
func (f *strategyFlag) Set(v string) error { *f = strategyFlag(v); return nil }
func (f *strategyFlag) Type() string       { return "spread|binpack" }

// serverControllers builds the in-process controllers of `skiff server`,
// which use its admin identity (a certificate the server renews); their
// metrics and health join the server's.
func serverControllers(srv *apiserver.Server, cfg controllers.Config, disabled bool, members *gossip.Membership) ([]part, error) {
	if disabled {
		return nil, nil
	}
	// The controllers read the server's storage in process (ReadFrom)
	// and write through its handler in process: no TLS, no socket.
	kubeconfig := srv.InProcessAdminConfig()
	run := func(c *controllers.Controllers) func(context.Context) error { return c.Start }
	if srv.Clustered() {
		// Every server of a cluster runs them; one leads. Leadership lost
		// (this server cut off from the others) ends the controllers, not
		// the server: they stand for it again, with new controller names.
		cfg.LeaderElect = true
		cfg.SkipNameValidation = true
		run = func(c *controllers.Controllers) func(context.Context) error { return standAgain(c.Start) }
	}
	c, err := controllers.New(cfg, kubeconfig)
	if err != nil {
		return nil, err
	}
	if members != nil {
		c.UseGossip(members)
	}
	c.ReadFrom(srv.Local())
	srv.AddMetrics(c.Gatherer())
	srv.AddHealth("controllers", c.Check)
	srv.AddHealth("scheduler", c.Check)
	return []part{{"controllers", run(c)}}, nil
}

// standAgain runs start again when it ends by losing its leadership,
// until ctx ends.
func standAgain(start func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		for {
			err := start(ctx)
			if ctx.Err() != nil || err == nil || !strings.Contains(err.Error(), "leader election lost") {
				return err
			}
			klog.InfoS("the controllers lost their leadership: they stand for it again")
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
		}
	}
}

// newControllersCommand is `skiff controllers`: the controllers alone,
// against a server elsewhere, usually several with --leader-elect.
func newControllersCommand() *cobra.Command {
	cfg := controllers.DefaultConfig()
	var gf gossipFlags
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "controllers",
		Short: "Run only the controllers (workload, scheduler, node lifecycle, node IPAM, garbage collector) against a server",
		Long: "skiff controllers connects to a skiff API server with an admin kubeconfig (--kubeconfig,\n" +
			"else $KUBECONFIG, ~/.kube/config, else the local server's) and runs the controllers. With --leader-elect,\n" +
			"several may run: one leads (Lease skiff-system/" + controllers.LeaderElectionID + "), the others stand by.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rc, _, err := cf.config()
			if err != nil {
				return err
			}
			c, err := controllers.New(cfg, rc)
			if err != nil {
				return err
			}
			members, err := controllersGossip(cmd.Context(), rc, gf)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "skiff controllers against %s (leader election: %v, gossip: %v)\n", rc.Host, cfg.LeaderElect, members != nil)
			if members == nil {
				return c.Start(cmd.Context())
			}
			c.UseGossip(members)
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- members.Run(ctx) }()
			err = c.Start(ctx)
			cancel()
			return errors.Join(err, <-done)
		},
	}
	fs := cmd.Flags()
	addControllerFlags(fs, &cfg)
	addGossipFlags(fs, &gf)
	fs.StringVar(&cf.server, "server", "", "the API server's URL (overrides the kubeconfig's)")
	fs.StringVar(&cf.kubeconfig, "kubeconfig", "", "an admin kubeconfig (default $KUBECONFIG, ~/.kube/config, or the local server's admin.kubeconfig)")
	fs.BoolVar(&cfg.LeaderElect, "leader-elect", false, "elect a leader among several controller processes on a Lease in skiff-system")
	fs.DurationVar(&cfg.LeaseDuration, "leader-elect-lease-duration", cfg.LeaseDuration, "how long a leader's Lease lasts unrenewed")
	fs.DurationVar(&cfg.RenewDeadline, "leader-elect-renew-deadline", cfg.RenewDeadline, "how long a leader tries to renew before it gives up leading")
	fs.DurationVar(&cfg.RetryPeriod, "leader-elect-retry-period", cfg.RetryPeriod, "how often candidates try to acquire or renew")
	return cmd
}
