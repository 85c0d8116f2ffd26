package main

import (
	"flag"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"
)

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "skiff",
		Short:         "skiff: a small, fast container orchestrator with the Kubernetes API",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	root.PersistentFlags().AddGoFlag(klogFlags.Lookup("v"))
	root.AddCommand(newServerCommand(), newAPIServerCommand(), newAgentCommand(), newControllersCommand(), newPlanCommand(), newTopCommand(), newKubeconfigCommand(), newIdentityCommand(), newTrustCommand(), newTokenCommand(), newSecretsCommand(), newEtcdSnapshotCommand(), newAPICommand(), newLogsCommand(), newExecCommand(), newMCPCommand(), newGossipCommand(), newInstallCommand(), newUninstallCommand(), newVersionCommand())
	return root
}
