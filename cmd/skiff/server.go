package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"skiff.dev/skiff/apiserver"
	"skiff.dev/skiff/controllers"
	"skiff.dev/skiff/nodeagent"
)

func addAPIServerFlags(fs *pflag.FlagSet, cfg *apiserver.Config) {
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for etcd data, certificates, identities, the join token and the audit log")
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "HTTPS listen address, host:port (port 0 picks a free port)")
	fs.StringSliceVar(&cfg.EtcdServers, "etcd-servers", cfg.EtcdServers, "external etcd client URLs; empty runs an embedded etcd in <data-dir>/etcd")
	fs.StringVar(&cfg.EtcdCAFile, "etcd-cafile", cfg.EtcdCAFile, "CA bundle verifying the external etcd's certificate")
	fs.StringVar(&cfg.EtcdCertFile, "etcd-certfile", cfg.EtcdCertFile, "client certificate for the external etcd")
	fs.StringVar(&cfg.EtcdKeyFile, "etcd-keyfile", cfg.EtcdKeyFile, "client key for the external etcd")
	fs.StringVar(&cfg.EtcdPrefix, "etcd-prefix", cfg.EtcdPrefix, "key prefix of every object in etcd")
	fs.BoolVar(&cfg.AuditLog, "audit-log", cfg.AuditLog, "write the audit log to <data-dir>/audit.log")
	fs.DurationVar(&cfg.RequestTimeout, "request-timeout", cfg.RequestTimeout, "end requests other than watches and logs after this long")
	fs.StringVar(&cfg.TrustPreset, "trust-preset", cfg.TrustPreset, "starting trust policy: restrictive (keys nobody trusted get 401) or permissive (any valid self-signed key is a viewer; development only)")
	fs.StringVar(&cfg.EncryptionConfig, "encryption-config", cfg.EncryptionConfig, "the encryption configuration Secrets are encrypted with in etcd, made there if missing (default <data-dir>/encryption-config.yaml); API servers sharing an etcd must share it")
	fs.DurationVar(&cfg.SignatureSkew, "signature-skew", cfg.SignatureSkew, "how far a signed request's X-Auth-Timestamp may be from the server's clock")
}

// addClusterFlags are `skiff server`'s flags for a cluster of servers
// over their embedded etcds.
func addClusterFlags(fs *pflag.FlagSet, cfg *apiserver.Config) {
	fs.BoolVar(&cfg.ClusterInit, "cluster-init", false, "make the embedded etcd the first member of a cluster of servers that others join (--join); its peers listen on --advertise-address:--etcd-peer-port with mutual TLS")
	fs.StringVar(&cfg.Join, "join", "", "on the first start, join the cluster of servers of this URL (https://SERVER:6443) with --token; later starts are members already")
	fs.StringVar(&cfg.JoinToken, "token", "", "with --join: a server token (skiff token create --role server), or a file holding one")
	fs.StringVar(&cfg.AdvertiseAddress, "advertise-address", "", "the IP the other servers reach this one's etcd at (default: the --listen address)")
	fs.IntVar(&cfg.EtcdPeerPort, "etcd-peer-port", cfg.EtcdPeerPort, "the port of the etcd peer listener of a server in a cluster")
}

// newServerCommand is `skiff server`, the whole control plane in one
// process: embedded etcd, the API server, and a local agent that makes this
// machine a node (--disable-agent leaves it out).
func newServerCommand() *cobra.Command {
	cfg := apiserver.DefaultConfig()
	agentCfg := nodeagent.DefaultConfig()
	agentCfg.Runtime = "auto"
	ctrlCfg := controllers.DefaultConfig()
	var disableAgent, disableControllers bool
	var gf gossipFlags
	var sf snapshotFlags
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane (embedded etcd, the API server, the controllers) and a local agent",
		Long: "skiff server runs the API server with its embedded etcd and, unless --disable-agent, a\n" +
			"node agent in the same process whose data lives in <data-dir>/agent. The agent's runtime\n" +
			"is the first of youki, crun and runc found (--runtime names one); without any, or without\n" +
			"root, it simulates containers (--runtime sim) and says so.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := sf.validate(cfg); err != nil {
				return err
			} else if sf.clusterReset {
				return clusterReset(cmd.OutOrStdout(), cfg, sf)
			}
			return serve(cmd, serverSetup{cfg: cfg, agent: agentCfg, ctrl: ctrlCfg, gossip: gf, snapshots: sf,
				disableAgent: disableAgent, disableControllers: disableControllers})
		},
	}
	fs := cmd.Flags()
	addAPIServerFlags(fs, &cfg)
	addControllerFlags(fs, &ctrlCfg)
	addGossipFlags(fs, &gf)
	addSnapshotFlags(fs, &sf)
	addClusterFlags(fs, &cfg)
	addGossipAgentFlags(fs, &agentCfg, "agent-")
	addTopologyFlags(fs, &agentCfg, "agent-")
	addSecurityFlags(fs, &agentCfg, "agent-")
	fs.BoolVar(&disableControllers, "disable-controllers", false, "run no controllers (run `skiff controllers` elsewhere)")
	fs.BoolVar(&disableAgent, "disable-agent", false, "run no local agent: this machine is not a node")
	fs.StringVar(&agentCfg.Runtime, "runtime", agentCfg.Runtime, "the local agent's runtime: auto (youki, crun or runc, else sim), youki, runc, crun, a path, or sim")
	fs.StringSliceVar(&agentCfg.InsecureRegistries, "insecure-registry", nil, "registries (host:port) the local agent pulls from over plain HTTP")
	fs.StringVar(&agentCfg.NodeName, "node-name", agentCfg.NodeName, "the local agent's Node name, and this server's name in a cluster of servers")
	fs.StringVar(&agentCfg.Listen, "agent-listen", agentCfg.Listen, "address of the local agent's HTTPS endpoint (logs, /metrics, /healthz)")
	fs.DurationVar(&agentCfg.Backoff.Base, "backoff-base", agentCfg.Backoff.Base, "the local agent's first crash-loop back-off; it doubles up to 5m")
	addNetworkFlags(fs, &agentCfg, "agent-")
	cmd.AddCommand(newServerListCommand(), newServerRemoveCommand())
	return cmd
}

// serverSetup is `skiff server`'s configuration, flags parsed.
type serverSetup struct {
	cfg                              apiserver.Config
	agent                            nodeagent.Config
	ctrl                             controllers.Config
	gossip                           gossipFlags
	snapshots                        snapshotFlags
	disableAgent, disableControllers bool
}

// serve builds the server's parts (the API server, gossip, the
// controllers, the server's Lease, snapshots, the local agent) and runs
// them until cmd's context ends.
func serve(cmd *cobra.Command, o serverSetup) error {
	cfg, agentCfg := o.cfg, o.agent
	cfg.Name = agentCfg.NodeName
	srv, err := newAPIServer(cmd.Context(), cmd.OutOrStdout(), "server", cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "export KUBECONFIG=%s\n", srv.KubeconfigPath())
	members, err := serverGossip(srv, cfg, o.gossip)
	if err != nil {
		return err
	}
	parts, err := serverControllers(srv, o.ctrl, o.disableControllers, members)
	if err != nil {
		return err
	}
	if members != nil {
		parts = append(parts, part{"gossip", members.Run})
	}
	lease, err := serverListParts(srv, cfg.Name, members)
	if err != nil {
		return err
	}
	parts = append(parts, lease)
	if snapshots, err := serverSnapshots(srv, cfg, o.snapshots, agentCfg.NodeName); err != nil {
		return err
	} else if snapshots != nil {
		parts = append(parts, *snapshots)
	}
	if o.disableAgent {
		return runServer(cmd.Context(), srv, parts...)
	}
	agentCfg.Server = srv.URL()
	agentCfg.JoinToken = filepath.Join(cfg.DataDir, apiserver.JoinTokenFile)
	agentCfg.DataDir = filepath.Join(cfg.DataDir, "agent")
	agentCfg.Runtime = localRuntime(cmd.ErrOrStderr(), agentCfg.Runtime)
	agentCfg.ClusterCIDR = o.ctrl.ClusterCIDR
	agent, err := nodeagent.New(agentCfg)
	if err != nil {
		return err
	}
	return runServer(cmd.Context(), srv, append(parts, part{"local agent", agent.Run})...)
}

// localRuntime resolves "auto": the first OCI runtime on $PATH when root,
// else the simulated one, with a loud warning.
func localRuntime(warn io.Writer, name string) string {
	if name != "auto" {
		return name
	}
	if os.Geteuid() == 0 {
		for _, rt := range []string{"youki", "crun", "runc"} {
			if _, err := exec.LookPath(rt); err == nil {
				return rt
			}
		}
	}
	why := "no OCI runtime (youki, crun, runc) is installed"
	if os.Geteuid() != 0 {
		why = "skiff server is not running as root"
	}
	fmt.Fprintf(warn, "\nWARNING: %s: the local agent SIMULATES containers (--runtime sim).\n"+
		"WARNING: no process will run. Install runc (apt-get install -y runc) and run as root for real containers.\n\n", why)
	return "sim"
}

// part is something that runs beside the API server until ctx ends.
type part struct {
	name string
	run  func(ctx context.Context) error
}

// runServer runs the API server, tells systemd it is ready once it is,
// then runs the other parts beside it (runParts says in which order they
// stop).
func runServer(ctx context.Context, srv *apiserver.Server, parts ...part) error {
	notifier := takeNotifySocket()
	// The server outlives ctx: it stops after the parts (runParts).
	srvCtx, stopServer := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServer()
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Run(srvCtx) }()
	readyCtx, stopWaiting := context.WithCancel(ctx)
	defer stopWaiting()
	ready := make(chan error, 1)
	go func() { ready <- waitReady(readyCtx, srv.URL()) }()
	select {
	case err := <-srvDone: // failed before it was ready
		stopWaiting()
		<-ready
		return err
	case err := <-ready:
		if err != nil {
			stopServer()
			return errors.Join(err, <-srvDone)
		}
	}
	// Type=notify units wait for this: /readyz answered 200, every
	// post-start hook has finished.
	if err := notifier.ready(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	return runParts(ctx, srvDone, stopServer, parts)
}

// partsStopGrace is how long the parts have to stop before the API server
// stops under them.
const partsStopGrace = 15 * time.Second

// runParts runs the parts beside the running API server (srvDone reports
// its end; stopServer ends it) until ctx ends, a part ends, or the server
// ends. A part that ends ends them all (nothing restarts it here), and is
// an error unless ctx had ended.
//
// Shutdown order: first the parts, while the API server still serves
// them (the local agent and the controllers finish their writes, the
// controllers give up their leadership, this server's Lease leaves the
// list of servers); then the API server, which drains its requests and
// then stops etcd.
func runParts(ctx context.Context, srvDone <-chan error, stopServer func(), parts []part) error {
	partsCtx, stopParts := context.WithCancel(ctx)
	defer stopParts()
	g, gctx := errgroup.WithContext(partsCtx)
	for _, p := range parts {
		g.Go(func() error {
			err := p.run(gctx)
			switch {
			case err != nil:
				return fmt.Errorf("%s: %w", p.name, err)
			case gctx.Err() == nil:
				return fmt.Errorf("%s stopped", p.name)
			}
			return nil
		})
	}
	partsDone := make(chan error, 1)
	go func() { partsDone <- g.Wait() }()
	select {
	case err := <-partsDone:
		stopServer()
		return errors.Join(err, <-srvDone)
	case <-ctx.Done():
		// Stopping: the parts have partsStopGrace to finish their writes
		// (a server without etcd quorum would keep them waiting).
		select {
		case err := <-partsDone:
			stopServer()
			return errors.Join(err, <-srvDone)
		case <-time.After(partsStopGrace):
			stopServer()
			return errors.Join(<-srvDone, <-partsDone)
		}
	case err := <-srvDone:
		// The server ended on its own (etcd failed, say): the parts cannot
		// go on without it.
		stopParts()
		return errors.Join(err, <-partsDone)
	}
}

// waitReady polls the server's /readyz until it answers 200.
func waitReady(ctx context.Context, url string) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		// Only readiness is asked, of this process's own loopback server.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/readyz", nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("server did not become ready: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// newAPIServerCommand is `skiff apiserver`: the API server alone, for
// running several over an external etcd.
func newAPIServerCommand() *cobra.Command {
	cfg := apiserver.DefaultConfig()
	var gf gossipFlags
	cmd := &cobra.Command{
		Use:   "apiserver",
		Short: "Run only the API server (embedded etcd unless --etcd-servers)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			srv, err := newAPIServer(cmd.Context(), cmd.OutOrStdout(), "apiserver", cfg)
			if err != nil {
				return err
			}
			members, err := serverGossip(srv, cfg, gf)
			if err != nil || members == nil {
				return errors.Join(err, srv.Run(cmd.Context()))
			}
			return runServer(cmd.Context(), srv, part{"gossip", members.Run})
		},
	}
	addAPIServerFlags(cmd.Flags(), &cfg)
	addGossipFlags(cmd.Flags(), &gf)
	return cmd
}

// newAPIServer makes the API server and prints where it listens and where
// its admin kubeconfig is (tests and scripts read these lines).
func newAPIServer(ctx context.Context, out io.Writer, command string, cfg apiserver.Config) (*apiserver.Server, error) {
	srv, err := apiserver.NewContext(ctx, cfg)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "skiff %s listening on %s\n", command, srv.URL())
	fmt.Fprintf(out, "admin kubeconfig: %s\n", srv.KubeconfigPath())
	return srv, nil
}
