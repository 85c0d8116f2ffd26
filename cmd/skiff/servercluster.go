package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"skiff.dev/skiff/apiserver"
	"skiff.dev/skiff/apiserver/serverlist"
)

// newServerListCommand is `skiff server list`: the cluster's servers as
// etcd knows them.
func newServerListCommand() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the servers of the cluster: name, etcd peer URL, role (leader, voter, learner)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rc, err := snapshotClient(&cf)
			if err != nil {
				return err
			}
			body, err := snapshotDo(cmd.Context(), rc.Get().AbsPath(apiserver.ClusterMembersPath))
			if err != nil {
				return fmt.Errorf("listing the servers: %w", err)
			}
			var members []apiserver.Member
			if err := json.Unmarshal(body, &members); err != nil {
				return fmt.Errorf("listing the servers: %w", err)
			}
			printMembers(cmd.OutOrStdout(), members)
			return nil
		},
	}
	addKubeconfigFlag(cmd.Flags(), &cf)
	return cmd
}

func printMembers(out io.Writer, members []apiserver.Member) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tPEER URL\tID")
	for _, m := range members {
		role := "voter"
		switch {
		case !m.Started:
			role = "added, not started"
		case m.Learner:
			role = "learner"
		case m.Leader:
			role = "leader"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.Name, role, m.PeerURL, m.ID)
	}
	tw.Flush()
}

// newServerRemoveCommand is `skiff server remove NAME`.
func newServerRemoveCommand() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "remove NAME|ID",
		Short: "Remove a server from the cluster's etcd; it cannot come back with its old data",
		Long: "skiff server remove takes a server out of the cluster's etcd membership: the cluster's\n" +
			"quorum no longer counts it. Stop the server first. A removed server that starts again\n" +
			"with its old data stops with an error; it joins again only with an empty etcd\n" +
			"(move <data-dir>/etcd aside, start it with --join and a server token). A server added\n" +
			"that never started has no name yet: remove it by its id (skiff server list).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rc, err := snapshotClient(&cf)
			if err != nil {
				return err
			}
			if _, err := snapshotDo(cmd.Context(), rc.Delete().AbsPath(apiserver.ClusterMembersPath, args[0])); err != nil {
				return fmt.Errorf("removing server %s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "server %s removed from the cluster\n", args[0])
			// Out of the list of servers at once, not when its Lease expires.
			cs, _, err := clientset(&cf)
			if err != nil {
				return err
			}
			err = cs.CoordinationV1().Leases(serverlist.Namespace).Delete(cmd.Context(), serverlist.LeaseName(args[0]), metav1.DeleteOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("server %s: its Lease in the list of servers (it expires within %s): %w", args[0], serverlist.LeaseDuration, err)
			}
			return nil
		},
	}
	addKubeconfigFlag(cmd.Flags(), &cf)
	return cmd
}
