package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"skiff.dev/skiff/identity"
)

func newIdentityCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "identity",
		Short: "Make or show your personal identity: an Ed25519 key the cluster can trust",
		Long: "A personal identity is an Ed25519 key in one file (default $XDG_CONFIG_HOME/skiff/identity,\n" +
			"else ~/.config/skiff/identity). The API server knows you by its key alone: give the public\n" +
			"key to a cluster admin to trust (skiff trust add), then use `skiff kubeconfig --identity`\n" +
			"for kubectl, or `skiff api` for one signed request.",
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newIdentityNewCommand(), newIdentityShowCommand())
	return cmd
}

func newIdentityNewCommand() *cobra.Command {
	var name, email, file string
	force := false
	cmd := &cobra.Command{
		Use:     "new [--name NAME] [--email EMAIL] [--file PATH] [--force]",
		Short:   "Make a new identity and print its id and public key",
		Example: "  skiff identity new --name 'Ada Lovelace' --email ada@example.org",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := identityPath(file)
			if err != nil {
				return err
			}
			p, err := identity.NewPersonal(name, email, time.Now())
			if err != nil {
				return err
			}
			if err := identity.SavePersonal(path, p, force); err != nil {
				return err
			}
			printIdentity(cmd.OutOrStdout(), p, path, false)
			fmt.Fprintln(cmd.ErrOrStderr(), "skiff identity: give the public-key to a cluster admin to trust (skiff trust add takes it)")
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "your name, kept in the file (and the common name of your kubeconfig's certificate)")
	cmd.Flags().StringVar(&email, "email", "", "your email address, kept in the file")
	cmd.Flags().StringVar(&file, "file", "", "where to write the identity (default $XDG_CONFIG_HOME/skiff/identity or ~/.config/skiff/identity)")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing identity (its key is lost)")
	return cmd
}

func newIdentityShowCommand() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "show [--file PATH]",
		Short: "Print an identity's id, user name, public key, name, email and creation time",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := identityPath(file)
			if err != nil {
				return err
			}
			p, err := identity.LoadPersonal(path)
			if err != nil {
				return err
			}
			printIdentity(cmd.OutOrStdout(), p, path, true)
			return nil
		},
	}
	cmd.Flags().StringVar(&file, "file", "", "the identity file (default $XDG_CONFIG_HOME/skiff/identity or ~/.config/skiff/identity); a plain PKCS#8 key such as admin.key also works")
	return cmd
}

// identityPath is file, or the default identity path when it is empty.
func identityPath(file string) (string, error) {
	if file != "" {
		return file, nil
	}
	return identity.DefaultIdentityPath()
}

// printIdentity writes p as `key: value` lines; details adds the holder's
// name, email and creation time.
func printIdentity(w io.Writer, p *identity.Personal, path string, details bool) {
	line := func(key, value string) {
		if value == "" {
			fmt.Fprintf(w, "%s:\n", key)
			return
		}
		fmt.Fprintf(w, "%s: %s\n", key, value)
	}
	line("id", p.ID())
	line("user", p.UserName())
	line("public-key", p.PublicKeyString())
	if details {
		created := ""
		if !p.Created.IsZero() {
			created = p.Created.UTC().Format(time.RFC3339)
		}
		line("name", p.Name)
		line("email", p.Email)
		line("created", created)
	}
	line("file", path)
}
