package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"skiff.dev/skiff/apiserver"
)

func newKubeconfigCommand() *cobra.Command {
	dataDir := apiserver.DefaultDataDir()
	cmd := &cobra.Command{
		Use:   "kubeconfig",
		Short: "Print the admin kubeconfig of the server whose data directory this is",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := filepath.Join(dataDir, apiserver.AdminKubeconfigFile)
			data, err := os.ReadFile(path)
			if err != nil {
				return fmt.Errorf("admin kubeconfig (has `skiff server --data-dir %s` run yet?): %w", dataDir, err)
			}
			_, err = cmd.OutOrStdout().Write(data)
			return err
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", dataDir, "the server's data directory")
	return cmd
}
