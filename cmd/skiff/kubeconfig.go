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
	renew := false
	cmd := &cobra.Command{
		Use:   "kubeconfig",
		Short: "Print the admin kubeconfig of the server whose data directory this is",
		Long: "skiff kubeconfig prints the admin kubeconfig from the server's data directory. Its client\n" +
			"certificate lasts a year; the server renews it (and rewrites admin.kubeconfig) once two\n" +
			"thirds of that have passed, and so does this command. --renew renews it now, e.g. for a\n" +
			"copy kept elsewhere.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			renewed, err := apiserver.RenewAdminKubeconfig(dataDir, renew)
			if err != nil {
				return err
			}
			if renewed {
				fmt.Fprintln(cmd.ErrOrStderr(), "skiff kubeconfig: renewed the admin's client certificate")
			}
			data, err := os.ReadFile(filepath.Join(dataDir, apiserver.AdminKubeconfigFile))
			if err != nil {
				return fmt.Errorf("admin kubeconfig: %w", err)
			}
			_, err = cmd.OutOrStdout().Write(data)
			return err
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", dataDir, "the server's data directory")
	cmd.Flags().BoolVar(&renew, "renew", false, "renew the admin's client certificate now (it lasts a year)")
	return cmd
}
