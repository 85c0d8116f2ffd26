package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// topSampleGap is the time between the two scrapes of each agent that a
// CPU rate is taken over.
const topSampleGap = time.Second

// topScrapes bounds the agents scraped at once.
const topScrapes = 16

// newTopCommand is `skiff top`: what nodes and Instances use now, read
// from the agents' metrics through the API server, as kubectl top reads
// metrics-server.
func newTopCommand() *cobra.Command {
	top := &cobra.Command{
		Use:   "top",
		Short: "Show the CPU and memory that nodes and Instances use, as kubectl top does",
		Long: "skiff top reads each agent's usage metrics through the API server (the Node's metrics\n" +
			"subresource) twice, a second apart: CPU is the rate between the two readings, in millicores;\n" +
			"memory is the working set (in use, less inactive file cache) at the second.",
	}
	top.AddCommand(newTopNodesCommand(), newTopInstancesCommand())
	return top
}

func newTopNodesCommand() *cobra.Command {
	var cf clientFlags
	var sortBy string
	cmd := &cobra.Command{
		Use:     "nodes [NAME]",
		Aliases: []string{"node", "no"},
		Short:   "Show the CPU and memory each node uses, and their share of its allocatable",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, _, err := newUsageSource(&cf)
			if err != nil {
				return err
			}
			var list skiffv1alpha1.NodeList
			if err := src.client.List(cmd.Context(), &list); err != nil {
				return err
			}
			nodes := slices.DeleteFunc(list.Items, func(n skiffv1alpha1.Node) bool { return len(args) == 1 && n.Name != args[0] })
			if len(nodes) == 0 {
				return fmt.Errorf("no node %s", strings.Join(args, ""))
			}
			names := make([]string, 0, len(nodes))
			for _, n := range nodes {
				names = append(names, n.Name)
			}
			first, second := src.sample(cmd.Context(), names, cmd.ErrOrStderr())
			rows := make([]usageRow, 0, len(nodes))
			for _, n := range nodes {
				row := nodeRow(n.Name, first[n.Name], second[n.Name])
				row.cpuAlloc, row.memAlloc = n.Status.Allocatable.Cpu().MilliValue(), n.Status.Allocatable.Memory().Value()
				rows = append(rows, row)
			}
			sortRows(rows, sortBy)
			return printNodes(cmd.OutOrStdout(), rows)
		},
	}
	cmd.Flags().StringVar(&cf.kubeconfig, "kubeconfig", "", "kubeconfig file (default $KUBECONFIG, ~/.kube/config, or the local server's admin.kubeconfig)")
	addServerFlag(cmd.Flags(), &cf)
	cmd.Flags().StringVar(&sortBy, "sort-by", "", "sort by cpu or memory, most first (default: by name)")
	return cmd
}

func newTopInstancesCommand() *cobra.Command {
	var cf clientFlags
	var sortBy string
	var all bool
	cmd := &cobra.Command{
		Use:     "instances [NAME]",
		Aliases: []string{"instance", "inst"},
		Short:   "Show the CPU and memory each running Instance uses (its containers together)",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, ns, err := newUsageSource(&cf)
			if err != nil {
				return err
			}
			opts := []client.ListOption{}
			if !all {
				opts = append(opts, client.InNamespace(ns))
			}
			var list skiffv1alpha1.InstanceList
			if err := src.client.List(cmd.Context(), &list, opts...); err != nil {
				return err
			}
			var nodes []string
			for _, inst := range list.Items {
				if inst.Spec.NodeName != "" && (len(args) == 0 || inst.Name == args[0]) && !slices.Contains(nodes, inst.Spec.NodeName) {
					nodes = append(nodes, inst.Spec.NodeName)
				}
			}
			first, second := src.sample(cmd.Context(), nodes, cmd.ErrOrStderr())
			rows := instanceRows(first, second, func(namespace, name string) bool {
				return (all || namespace == ns) && (len(args) == 0 || name == args[0])
			})
			if len(rows) == 0 {
				if all {
					fmt.Fprintln(cmd.ErrOrStderr(), "No running Instances with usage found.")
				} else {
					fmt.Fprintf(cmd.ErrOrStderr(), "No running Instances with usage found in %s namespace.\n", ns)
				}
				return nil
			}
			sortRows(rows, sortBy)
			return printInstances(cmd.OutOrStdout(), rows, all)
		},
	}
	cf.add(cmd)
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "Instances of every namespace")
	cmd.Flags().StringVar(&sortBy, "sort-by", "", "sort by cpu or memory, most first (default: by name)")
	return cmd
}

// usageSource reads Nodes and Instances, and agents' metrics through the
// API server.
type usageSource struct {
	client client.Client
	http   *http.Client
	host   string
}

func newUsageSource(cf *clientFlags) (*usageSource, string, error) {
	rc, ns, err := cf.config()
	if err != nil {
		return nil, "", err
	}
	scheme := runtime.NewScheme()
	if err := skiffv1alpha1.AddToScheme(scheme); err != nil {
		return nil, "", err
	}
	hc, err := rest.HTTPClientFor(rc)
	if err != nil {
		return nil, "", err
	}
	c, err := client.New(rc, client.Options{Scheme: scheme, HTTPClient: hc})
	if err != nil {
		return nil, "", err
	}
	return &usageSource{client: c, http: hc, host: strings.TrimSuffix(rc.Host, "/")}, ns, nil
}

// scrape reads one node's agent metrics: GET nodes/NAME/metrics.
func (s *usageSource) scrape(ctx context.Context, node string) (usageSample, error) {
	u := s.host + "/apis/" + skiffv1alpha1.SchemeGroupVersion.String() + "/nodes/" + url.PathEscape(node) + "/metrics"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return usageSample{}, err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return usageSample{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return usageSample{}, fmt.Errorf("metrics of node %q: %s", node, apiMessage(resp))
	}
	sample, err := parseUsage(resp.Body, time.Now())
	if err != nil {
		return usageSample{}, fmt.Errorf("metrics of node %q: %w", node, err)
	}
	return sample, nil
}

// sample scrapes every node twice, topSampleGap apart. A node whose agent
// did not answer is missing from the results, and said so on warn.
func (s *usageSource) sample(ctx context.Context, nodes []string, warn io.Writer) (first, second map[string]*usageSample) {
	first, second = map[string]*usageSample{}, map[string]*usageSample{}
	var mu sync.Mutex
	var g errgroup.Group
	g.SetLimit(topScrapes)
	for _, node := range nodes {
		g.Go(func() error {
			a, err := s.scrape(ctx, node)
			if err == nil {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(topSampleGap):
				}
				var b usageSample
				if b, err = s.scrape(ctx, node); err == nil {
					mu.Lock()
					first[node], second[node] = &a, &b
					mu.Unlock()
					return nil
				}
			}
			mu.Lock()
			fmt.Fprintf(warn, "warning: node %s: %v\n", node, err)
			mu.Unlock()
			return nil
		})
	}
	_ = g.Wait() // every error was told on warn
	return first, second
}
