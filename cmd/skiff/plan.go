package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/controllers/scheduler"
	"skiff.dev/skiff/controllers/workload"
)

// newPlanCommand is `skiff plan -f workload.yaml`: what the controllers
// would do next if the file were applied, changing nothing.
func newPlanCommand() *cobra.Command {
	var flags clientFlags
	var file string
	scoring := scheduler.Spread
	cmd := &cobra.Command{
		Use:   "plan -f FILE",
		Short: "Show what the controllers would do next for the Workloads in a file, changing nothing",
		Long: "skiff plan reads Workloads from a file (- for stdin), has the server default and validate\n" +
			"them (a dry run), and runs the workload controller's COMPARE and PLAN and the scheduler\n" +
			"against the live cluster: the next step's actions, the node each new Instance would get,\n" +
			"and why an Instance fits nowhere. A rollout takes several steps; this is the first.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return errors.New("-f: name a file (- for stdin)")
			}
			rc, ns, err := flags.config()
			if err != nil {
				return err
			}
			scheme := runtime.NewScheme()
			if err := skiffv1alpha1.AddToScheme(scheme); err != nil {
				return err
			}
			c, err := client.New(rc, client.Options{Scheme: scheme})
			if err != nil {
				return err
			}
			workloads, err := readWorkloads(cmd.InOrStdin(), file, scheme, ns)
			if err != nil {
				return err
			}
			for _, w := range workloads {
				if err := planOne(cmd.Context(), cmd.OutOrStdout(), c, w, scheduler.New(scoring)); err != nil {
					return err
				}
			}
			return nil
		},
	}
	flags.add(cmd)
	cmd.Flags().StringVarP(&file, "filename", "f", "", "file of Workloads (YAML or JSON, several documents allowed; - for stdin)")
	cmd.Flags().Var((*strategyFlag)(&scoring), "scoring", "the scheduler's scoring to preview with: spread or binpack")
	return cmd
}

// readWorkloads decodes the Workloads of file; other kinds are an error.
func readWorkloads(stdin io.Reader, file string, scheme *runtime.Scheme, ns string) ([]*skiffv1alpha1.Workload, error) {
	r := stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("-f: %w", err)
		}
		defer f.Close()
		r = f
	}
	decoder := serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
	docs := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var out []*skiffv1alpha1.Workload
	for i := 1; ; i++ {
		doc, err := docs.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("-f %s: document %d: %w", file, i, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, gvk, err := decoder.Decode(doc, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("-f %s: document %d: %w", file, i, err)
		}
		w, ok := obj.(*skiffv1alpha1.Workload)
		if !ok {
			return nil, fmt.Errorf("-f %s: document %d is a %s; skiff plan previews Workloads", file, i, gvk.Kind)
		}
		if w.Namespace == "" {
			w.Namespace = ns
		}
		out = append(out, w)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-f %s: no Workload in it", file)
	}
	return out, nil
}

// planOne previews one Workload as the server would store it.
func planOne(ctx context.Context, out io.Writer, c client.Client, w *skiffv1alpha1.Workload, sched *scheduler.Scheduler) error {
	w, p, err := workload.PreviewApply(ctx, c, w, sched)
	if err != nil {
		return err
	}
	printPreview(out, w, p)
	return nil
}

func printPreview(out io.Writer, w *skiffv1alpha1.Workload, p *workload.Preview) {
	cmp := p.Comparison
	fmt.Fprintf(out, "Workload %s/%s: revision %s, %d replicas, strategy %s\n", w.Namespace, w.Name, cmp.UpdateRevision, cmp.Replicas, cmp.Strategy)
	fmt.Fprintf(out, "Drift: magnitude %d, urgency %s (%d to add, %d out of date, %d surplus, %d finished)\n",
		cmp.Magnitude(), cmp.Urgency, cmp.Additions, cmp.Modifications, cmp.Deletions, cmp.Replacements)
	if len(p.Actions) == 0 {
		fmt.Fprintln(out, "No changes: the next reconciliation does nothing.")
		return
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACTION\tINSTANCE\tREVISION\tNODE\tREASON")
	placed := 0
	for _, a := range p.Actions {
		name, node, rev := "(new)", "", a.Revision
		if a.Instance != nil {
			name, node, rev = a.Instance.Name, a.Instance.Spec.NodeName, a.Instance.Labels[skiffv1alpha1.RevisionLabel]
		}
		reason := a.Reason
		if a.Type != workload.Delete {
			pl := p.Placements[placed]
			placed++
			node = pl.Node
			if a.Type == workload.Replace {
				rev = a.Revision
			}
			if pl.Node == "" {
				node, reason = "-", reason+"; fits nowhere: "+pl.WhyNot
			}
		}
		if node == "" {
			node = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.Type, name, rev, node, reason)
	}
	tw.Flush()
}
