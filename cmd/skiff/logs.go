package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/apiserver"
	"skiff.dev/skiff/internal/failover"
)

// clientFlags locate the cluster as kubectl does: --kubeconfig, then
// $KUBECONFIG, then ~/.kube/config; failing those, the admin kubeconfig of
// a server on this machine.
type clientFlags struct {
	kubeconfig string
	namespace  string
	// server overrides the kubeconfig's server URL, when set; several,
	// comma-separated, are servers of one cluster to fail over among.
	server string
}

func (f *clientFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default $KUBECONFIG, ~/.kube/config, or the local server's admin.kubeconfig)")
	addServerFlag(cmd.Flags(), f)
	cmd.Flags().StringVarP(&f.namespace, "namespace", "n", "", "namespace (default: the kubeconfig context's, else default)")
}

// addServerFlag adds --server, which overrides the kubeconfig's server.
func addServerFlag(fs *pflag.FlagSet, f *clientFlags) {
	fs.StringVar(&f.server, "server", "", "the API server's https:// URL, in place of the kubeconfig's (whose credentials and certificate are kept); "+
		"several, comma-separated, for a cluster of servers: requests go to one and move on to the next while it is down")
}

func (f *clientFlags) config() (*rest.Config, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = f.kubeconfig
	if f.kubeconfig == "" && os.Getenv("KUBECONFIG") == "" {
		if _, err := os.Stat(rules.GetDefaultFilename()); err != nil {
			rules.ExplicitPath = filepath.Join(apiserver.DefaultDataDir(), apiserver.AdminKubeconfigFile)
		}
	}
	servers := failover.Split(f.server)
	for _, s := range servers {
		if _, err := parseServerURL(s); err != nil {
			return nil, "", err
		}
	}
	overrides := &clientcmd.ConfigOverrides{Context: clientcmdapi.Context{Namespace: f.namespace}}
	if len(servers) > 0 {
		overrides.ClusterInfo.Server = servers[0]
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig: %w", err)
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig: %w", err)
	}
	if len(servers) > 0 {
		// Even one: a server other than the kubeconfig's serves the
		// cluster's certificate, which names another address.
		fo, err := failover.New(servers)
		if err != nil {
			return nil, "", fmt.Errorf("--server: %w", err)
		}
		fo.Apply(cfg)
	}
	return cfg, ns, nil
}

func newLogsCommand() *cobra.Command {
	var cf clientFlags
	var opts skiffv1alpha1.InstanceLogOptions
	var tail int64
	var since time.Duration
	var limit int64
	cmd := &cobra.Command{
		Use:   "logs [-f] [-c CONTAINER] INSTANCE",
		Short: "Print the logs of a container of an Instance",
		Example: "  skiff logs web-7d9f8c6b5d-x2x4q\n" +
			"  skiff logs -f -c sidecar web-7d9f8c6b5d-x2x4q\n" +
			"  skiff logs --previous --tail 20 web-7d9f8c6b5d-x2x4q",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("tail") {
				opts.TailLines = &tail
			}
			if since > 0 {
				secs := int64((since + time.Second - 1) / time.Second)
				opts.SinceSeconds = &secs
			}
			if limit > 0 {
				opts.LimitBytes = &limit
			}
			cfg, ns, err := cf.config()
			if err != nil {
				return err
			}
			return streamLogs(cmd.Context(), cfg, ns, args[0], &opts, cmd.OutOrStdout())
		},
	}
	cf.add(cmd)
	fs := cmd.Flags()
	fs.BoolVarP(&opts.Follow, "follow", "f", false, "stream the log until the container stops")
	fs.StringVarP(&opts.Container, "container", "c", "", "container name (may be omitted when the Instance has one)")
	fs.BoolVarP(&opts.Previous, "previous", "p", false, "the log of the container's run before its last restart")
	fs.BoolVar(&opts.Timestamps, "timestamps", false, "prefix each line with its RFC 3339 time")
	fs.Int64Var(&tail, "tail", -1, "lines from the end to show; -1 shows all")
	fs.DurationVar(&since, "since", 0, "only output newer than this, e.g. 5m")
	fs.Int64Var(&limit, "limit-bytes", 0, "stop after this many bytes")
	return cmd
}

func streamLogs(ctx context.Context, cfg *rest.Config, ns, name string, opts *skiffv1alpha1.InstanceLogOptions, out io.Writer) error {
	if opts.TailLines != nil && *opts.TailLines < 0 {
		opts.TailLines = nil
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return err
	}
	u := strings.TrimSuffix(cfg.Host, "/") + "/apis/" + skiffv1alpha1.SchemeGroupVersion.String() +
		"/namespaces/" + url.PathEscape(ns) + "/instances/" + url.PathEscape(name) + "/log?" + opts.Query().Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("logs of %s/%s: %s", ns, name, apiMessage(resp))
	}
	if _, err := io.Copy(out, resp.Body); err != nil && ctx.Err() == nil {
		return fmt.Errorf("logs of %s/%s: %w", ns, name, err)
	}
	return nil
}

// apiMessage is the message of an error response: the Status's, else the
// body's text.
func apiMessage(resp *http.Response) string {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var st metav1.Status
	if json.Unmarshal(body, &st) == nil && st.Message != "" {
		return st.Message
	}
	if text := strings.TrimSpace(string(body)); text != "" {
		return text
	}
	return resp.Status
}
