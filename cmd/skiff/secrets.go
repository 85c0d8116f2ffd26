package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"skiff.dev/skiff/apiserver"
)

func newSecretsCommand() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "secrets",
		Short: "Manage how Secrets are kept at rest",
		Args:  cobra.NoArgs,
	}
	addKubeconfigFlag(cmd.PersistentFlags(), &cf)
	addServerFlag(cmd.PersistentFlags(), &cf)
	cmd.AddCommand(newRotateKeyCommand(&cf))
	return cmd
}

func newRotateKeyCommand(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate-key",
		Short: "Encrypt every Secret with a new key and retire the old ones",
		Long: "skiff secrets rotate-key asks the API server (as an admin) to add a new encryption key,\n" +
			"rewrite every Secret with it, and then remove the old keys. It prints the new key's name,\n" +
			"how many Secrets were rewritten, and the keys retired. A rotation that fails part way\n" +
			"keeps the old keys, so every Secret stays readable; run it again.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cs, _, err := clientset(cf)
			if err != nil {
				return err
			}
			body, err := cs.CoreV1().RESTClient().Post().AbsPath(apiserver.RotateKeyPath).DoRaw(cmd.Context())
			if err != nil {
				return fmt.Errorf("rotating the encryption key: %w", err)
			}
			var rot apiserver.Rotation
			if err := json.Unmarshal(body, &rot); err != nil {
				return fmt.Errorf("rotating the encryption key: the server's report %q: %w", body, err)
			}
			printRotation(cmd.OutOrStdout(), rot)
			return nil
		},
	}
}

// printRotation writes rot as `key: value` lines.
func printRotation(out io.Writer, rot apiserver.Rotation) {
	fmt.Fprintf(out, "key: %s\n", rot.Key)
	fmt.Fprintf(out, "rewritten: %d\n", rot.Rewritten)
	if len(rot.Retired) == 0 {
		fmt.Fprintln(out, "retired:")
		return
	}
	fmt.Fprintf(out, "retired: %s\n", strings.Join(rot.Retired, ", "))
}
