package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"skiff.dev/skiff/version"
)

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print skiff's version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "skiff %s (Kubernetes API %s, %s, %s/%s)\n",
				version.Version, version.KubernetesMinor, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		},
	}
}
