package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"

	"skiff.dev/skiff/apiserver"
	"skiff.dev/skiff/apiserver/etcdsnapshot"
)

// snapshotFlags are `skiff server`'s flags for etcd snapshots and restores.
type snapshotFlags struct {
	schedule     string
	retention    int
	dir          string
	clusterReset bool
	restore      string
}

func addSnapshotFlags(fs *pflag.FlagSet, f *snapshotFlags) {
	fs.StringVar(&f.schedule, "etcd-snapshot-schedule", etcdsnapshot.DefaultSchedule, "when to snapshot the embedded etcd: a 5-field cron expression in local time, @daily/@hourly/..., or \"@every 6h\"; empty takes none")
	fs.IntVar(&f.retention, "etcd-snapshot-retention", etcdsnapshot.DefaultRetention, "how many scheduled snapshots to keep; older ones are deleted (snapshots saved on demand are kept)")
	fs.StringVar(&f.dir, "etcd-snapshot-dir", "", "directory of the etcd snapshots (default <data-dir>/snapshots)")
	fs.BoolVar(&f.clusterReset, "cluster-reset", false, "make this server's etcd a cluster of one and exit: keeping its data (a cluster of servers that lost its quorum), or with --restore replacing it with a snapshot's (and its encryption keys); the other servers then join again")
	fs.StringVar(&f.restore, "restore", "", "with --cluster-reset: the snapshot to restore (a file, or a name in --etcd-snapshot-dir)")
}

// validate checks the flags before the server starts.
func (f *snapshotFlags) validate(cfg apiserver.Config) error {
	if f.restore != "" && !f.clusterReset {
		return errors.New("--restore needs --cluster-reset (the server's etcd is replaced)")
	}
	if f.clusterReset && len(cfg.EtcdServers) > 0 {
		return errors.New("--cluster-reset restores the embedded etcd: restore an external etcd (--etcd-servers) with etcdutl")
	}
	if f.schedule != "" {
		if _, err := etcdsnapshot.ParseSchedule(f.schedule); err != nil {
			return fmt.Errorf("--etcd-snapshot-schedule: %w", err)
		}
	}
	if f.retention < 1 {
		return fmt.Errorf("--etcd-snapshot-retention %d: keep at least 1", f.retention)
	}
	return nil
}

func (f *snapshotFlags) snapshotDir(dataDir string) string {
	if f.dir != "" {
		return f.dir
	}
	return filepath.Join(dataDir, etcdsnapshot.DirName)
}

// serverSnapshots serves the snapshot endpoint and returns the part that
// takes the scheduled snapshots (nil when none are scheduled). With an
// external etcd there are none: the endpoint says so.
func serverSnapshots(srv *apiserver.Server, cfg apiserver.Config, f snapshotFlags, node string) (*part, error) {
	if len(cfg.EtcdServers) > 0 {
		srv.AddHandler(etcdsnapshot.APIPath, etcdsnapshot.Unavailable("skiff snapshots its embedded etcd; this server uses an external etcd (--etcd-servers): snapshot it with etcdctl"))
		return nil, nil
	}
	endpoint, err := etcdsnapshot.EmbeddedEndpoint(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	encryption := cfg.EncryptionConfig
	if encryption == "" {
		encryption = filepath.Join(cfg.DataDir, apiserver.EncryptionConfigFile)
	}
	if node == "" {
		node, _ = os.Hostname()
	}
	store := &etcdsnapshot.Store{
		Dir: f.snapshotDir(cfg.DataDir), DataDir: cfg.DataDir, EncryptionConfig: encryption,
		Node: strings.ToLower(node), Endpoint: endpoint, EtcdPrefix: cfg.EtcdPrefix,
	}
	srv.AddHandler(etcdsnapshot.APIPath, etcdsnapshot.Handler(store))
	if f.schedule == "" {
		return nil, nil
	}
	schedule, err := etcdsnapshot.ParseSchedule(f.schedule)
	if err != nil {
		return nil, fmt.Errorf("--etcd-snapshot-schedule: %w", err)
	}
	sched := &etcdsnapshot.Scheduler{Store: store, Schedule: schedule, Retention: f.retention}
	srv.AddHealthReport("etcd_snapshots", func(_ context.Context) (any, error) { return sched.Status(), nil })
	return &part{"etcd snapshots", sched.Run}, nil
}

// clusterReset is `skiff server --cluster-reset --restore FILE`: it
// restores the snapshot into the data directory and exits; the server
// starts from it the next time, without the two flags.
func clusterReset(out io.Writer, cfg apiserver.Config, f snapshotFlags) error {
	if f.restore == "" {
		if err := apiserver.ResetMembership(cfg); err != nil {
			return err
		}
		fmt.Fprintf(out, "this server's etcd is now the only member of its cluster, with all its data\n")
		fmt.Fprintf(out, "now start it without --cluster-reset; the other servers join again with an empty etcd: move <data-dir>/etcd aside on each, start it with --join and a server token\n")
		return nil
	}
	file := f.restore
	if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) && !strings.ContainsRune(file, filepath.Separator) {
		if alt := filepath.Join(f.snapshotDir(cfg.DataDir), file); fileExists(alt) {
			file = alt
		}
	}
	start := time.Now()
	member, peer, err := apiserver.RestoreMember(cfg.DataDir)
	if err != nil {
		return err
	}
	rep, err := etcdsnapshot.Restore(etcdsnapshot.RestoreOptions{
		File: file, DataDir: cfg.DataDir, EncryptionConfig: cfg.EncryptionConfig, MemberName: member, MemberPeerURL: peer,
	})
	if err != nil {
		return fmt.Errorf("restore %s: %w", file, err)
	}
	if err := apiserver.RestoredMembership(cfg.DataDir, rep.Previous); err != nil {
		return fmt.Errorf("restore %s: keeping this server's cluster membership: %w", file, err)
	}
	m := rep.Manifest
	fmt.Fprintf(out, "restored %s (taken %s on %s at etcd revision %d) in %s\n", m.Name, m.Created.Format(time.RFC3339), m.Node, m.Revision, time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(out, "objects: %s\n", objectSummary(m.Objects))
	fmt.Fprintf(out, "etcd: %s, a new one-member cluster at revision %d (history before it is compacted: clients list again)\n", rep.EtcdDir, rep.Revision)
	if rep.Previous != "" {
		fmt.Fprintf(out, "previous etcd: moved to %s (delete it once the restore is good)\n", rep.Previous)
	}
	fmt.Fprintf(out, "encryption keys: %s, from the snapshot", rep.EncryptionConfig)
	if rep.EncryptionBackup != "" {
		fmt.Fprintf(out, " (the previous file is %s)", rep.EncryptionBackup)
	}
	fmt.Fprintln(out)
	if len(rep.Written) > 0 {
		fmt.Fprintf(out, "identities and trust written from the snapshot: %s\n", strings.Join(rep.Written, ", "))
	}
	if len(rep.Kept) > 0 {
		fmt.Fprintf(out, "identities kept as they are (they differ from the snapshot's): %s\n", strings.Join(rep.Kept, ", "))
	}
	fmt.Fprintf(out, "now start the server without --cluster-reset and --restore: skiff server --data-dir %s\n", cfg.DataDir)
	if member != "" {
		fmt.Fprintf(out, "it is server %s, alone in its cluster: the other servers join it again with an empty etcd (move <data-dir>/etcd aside on each, start it with --join and a server token)\n", member)
	}
	return nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// newEtcdSnapshotCommand is `skiff etcd-snapshot`.
func newEtcdSnapshotCommand() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "etcd-snapshot",
		Short: "Save, list and delete snapshots of the server's etcd",
		Long: "skiff etcd-snapshot asks the server (as an admin) to snapshot its embedded etcd into its\n" +
			"snapshot directory (<data-dir>/snapshots unless --etcd-snapshot-dir), to list the snapshots\n" +
			"there, or to delete one. A snapshot is one file, <name>-<node>-<unix time>: the etcd database,\n" +
			"the keys its Secrets are encrypted with, and the server's identities; it is as secret as the\n" +
			"data directory. `skiff server --cluster-reset --restore FILE` restores one. The server also\n" +
			"takes scheduled snapshots (--etcd-snapshot-schedule, --etcd-snapshot-retention).",
		Args: cobra.NoArgs,
	}
	addKubeconfigFlag(cmd.PersistentFlags(), &cf)
	cmd.AddCommand(newSnapshotSaveCommand(&cf), newSnapshotListCommand(&cf), newSnapshotDeleteCommand(&cf))
	return cmd
}

func snapshotClient(cf *clientFlags) (rest.Interface, error) {
	cs, _, err := clientset(cf)
	if err != nil {
		return nil, err
	}
	return cs.CoreV1().RESTClient(), nil
}

// snapshotDo sends req and returns the body, or the server's message.
func snapshotDo(ctx context.Context, req *rest.Request) ([]byte, error) {
	res := req.Do(ctx)
	body, err := res.Raw()
	if err != nil {
		// Error decodes the server's metav1.Status, which says why.
		return nil, res.Error()
	}
	return body, nil
}

func newSnapshotSaveCommand(cf *clientFlags) *cobra.Command {
	name := etcdsnapshot.OnDemandName
	cmd := &cobra.Command{
		Use:   "save [--name NAME]",
		Short: "Snapshot the server's etcd now and print the file's path and size",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := etcdsnapshot.ValidName(name); err != nil {
				return fmt.Errorf("--name: %w", err)
			}
			c, err := snapshotClient(cf)
			if err != nil {
				return err
			}
			body, err := snapshotDo(cmd.Context(), c.Post().AbsPath(etcdsnapshot.APIPath).Param("name", name))
			if err != nil {
				return fmt.Errorf("etcd snapshot: %w", err)
			}
			var info etcdsnapshot.Info
			if err := json.Unmarshal(body, &info); err != nil {
				return fmt.Errorf("etcd snapshot: the server's report %q: %w", body, err)
			}
			printSnapshot(cmd.OutOrStdout(), info)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", name, "the snapshot's name; the file is <name>-<node>-<unix time>")
	return cmd
}

// printSnapshot writes what save made as `key: value` lines.
func printSnapshot(out io.Writer, in etcdsnapshot.Info) {
	fmt.Fprintf(out, "name: %s\n", in.Name)
	fmt.Fprintf(out, "path: %s\n", in.Path)
	fmt.Fprintf(out, "size: %s (%d bytes)\n", humanSize(in.Size), in.Size)
	fmt.Fprintf(out, "created: %s\n", in.Created.Format(time.RFC3339))
	fmt.Fprintf(out, "etcd revision: %d\n", in.Revision)
	fmt.Fprintf(out, "objects: %s\n", objectSummary(in.Objects))
	fmt.Fprintln(out, "contains:")
	for _, c := range in.Contains {
		fmt.Fprintf(out, "  - %s\n", c)
	}
}

// objectSummary is "12 (namespaces 3, secrets 2, ...)".
func objectSummary(objects map[string]int) string {
	total := 0
	var parts []string
	for r, n := range objects {
		total += n
		parts = append(parts, fmt.Sprintf("%s %d", r, n))
	}
	sort.Strings(parts)
	if total == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ", "))
}

func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func newSnapshotListCommand(cf *clientFlags) *cobra.Command {
	var output, dir string
	cmd := &cobra.Command{
		Use:   "list [--dir DIR]",
		Short: "List the snapshots: name, size, created",
		Long: "skiff etcd-snapshot list asks the server for its snapshots. With --dir it reads a snapshot\n" +
			"directory itself, and the server need not run (to choose a snapshot to restore).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var list []etcdsnapshot.Info
			if dir != "" {
				var err error
				if list, err = (&etcdsnapshot.Store{Dir: dir}).List(); err != nil {
					return err
				}
			} else {
				c, err := snapshotClient(cf)
				if err != nil {
					return err
				}
				body, err := snapshotDo(cmd.Context(), c.Get().AbsPath(etcdsnapshot.APIPath))
				if err != nil {
					return fmt.Errorf("listing etcd snapshots: %w", err)
				}
				if err := json.Unmarshal(body, &list); err != nil {
					return fmt.Errorf("listing etcd snapshots: the server's answer %q: %w", body, err)
				}
			}
			switch output {
			case "json":
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if list == nil {
					list = []etcdsnapshot.Info{}
				}
				return enc.Encode(list)
			case "", "wide":
				printSnapshots(cmd.OutOrStdout(), list, output == "wide")
				return nil
			default:
				return fmt.Errorf("-o %q: want json or wide", output)
			}
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "json, or wide (adds the revision, the node and whether it was scheduled)")
	cmd.Flags().StringVar(&dir, "dir", "", "read this snapshot directory instead of asking the server")
	return cmd
}

func printSnapshots(out io.Writer, list []etcdsnapshot.Info, wide bool) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	if wide {
		fmt.Fprintln(tw, "NAME\tSIZE\tCREATED\tREVISION\tNODE\tSCHEDULED")
	} else {
		fmt.Fprintln(tw, "NAME\tSIZE\tCREATED")
	}
	for _, in := range list {
		created := in.Created.Local().Format(time.RFC3339)
		if in.Error != "" {
			fmt.Fprintf(tw, "%s\t%s\t%s\tnot a snapshot: %s\n", in.Name, humanSize(in.Size), created, in.Error)
			continue
		}
		if wide {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%t\n", in.Name, humanSize(in.Size), created, in.Revision, in.Node, in.Scheduled)
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", in.Name, humanSize(in.Size), created)
		}
	}
	tw.Flush()
}

func newSnapshotDeleteCommand(cf *clientFlags) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "delete NAME...",
		Short: "Delete snapshots by name, as list shows them",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var c rest.Interface
			if dir == "" {
				var err error
				if c, err = snapshotClient(cf); err != nil {
					return err
				}
			}
			var errs []error
			for _, name := range args {
				var err error
				if dir != "" {
					err = (&etcdsnapshot.Store{Dir: dir}).Delete(name)
				} else {
					_, err = snapshotDo(cmd.Context(), c.Delete().AbsPath(etcdsnapshot.APIPath, name))
				}
				if err != nil {
					errs = append(errs, fmt.Errorf("delete %s: %w", name, err))
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "deleted %s\n", name)
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "delete from this snapshot directory instead of asking the server")
	return cmd
}
