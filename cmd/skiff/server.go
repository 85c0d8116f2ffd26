package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"skiff.dev/skiff/apiserver"
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
}

// newServerCommand is `skiff server`, the whole control plane in one
// process. Today that is the API server and its embedded etcd; the
// controllers and a local agent join it as they are built.
func newServerCommand() *cobra.Command {
	return newAPIServerCommandNamed("server", "Run the control plane: embedded etcd and the API server")
}

// newAPIServerCommand is `skiff apiserver`: the API server alone, for
// running several over an external etcd.
func newAPIServerCommand() *cobra.Command {
	return newAPIServerCommandNamed("apiserver", "Run only the API server (embedded etcd unless --etcd-servers)")
}

func newAPIServerCommandNamed(use, short string) *cobra.Command {
	cfg := apiserver.DefaultConfig()
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			srv, err := apiserver.New(cfg)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "skiff server listening on %s\n", srv.URL())
			fmt.Fprintf(out, "admin kubeconfig: %s\n", srv.KubeconfigPath())
			fmt.Fprintf(out, "export KUBECONFIG=%s\n", srv.KubeconfigPath())
			return srv.Run(cmd.Context())
		},
	}
	addAPIServerFlags(cmd.Flags(), &cfg)
	return cmd
}
