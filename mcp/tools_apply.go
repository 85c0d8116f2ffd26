package mcp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/controllers/scheduler"
	"skiff.dev/skiff/controllers/workload"
)

// ApplyIn are apply_manifest's arguments.
type ApplyIn struct {
	Manifest  string `json:"manifest" jsonschema:"YAML or JSON of one or more objects, documents separated by ---"`
	Namespace string `json:"namespace,omitempty" jsonschema:"namespace of documents that name none; default: the bridge's"`
	DryRun    bool   `json:"dry_run,omitempty" jsonschema:"report what would change, changing nothing"`
	Confirm   bool   `json:"confirm,omitempty" jsonschema:"true once the user agreed to scale a Workload to zero, for clients that cannot be asked"`
}

// ApplyOut says what each document did or would do.
type ApplyOut struct {
	Documents []AppliedDocument `json:"documents"`
	DryRun    bool              `json:"dryRun,omitempty"`
	Message   string            `json:"message"`
}

// AppliedDocument is one document's outcome.
type AppliedDocument struct {
	Index  int    `json:"index"`
	Object string `json:"object"`
	// Action is created, configured or unchanged (would be, in a dry run).
	Action string `json:"action"`
	// Changes are the top-level fields of spec and metadata that change.
	Changes []string `json:"changes,omitempty"`
}

// PlanIn are plan_workload's arguments: a manifest, a Workload described
// as to create_workload, or the name of a Workload to plan as it stands.
type PlanIn struct {
	Manifest  string        `json:"manifest,omitempty" jsonschema:"YAML of a Workload, as it would be applied"`
	Workload  *WorkloadArgs `json:"workload,omitempty" jsonschema:"a Workload as create_workload takes it"`
	Name      string        `json:"name,omitempty" jsonschema:"an existing Workload, planned as it stands"`
	Namespace string        `json:"namespace,omitempty" jsonschema:"namespace; default: the bridge's"`
}

// PlanOut is the controllers' next step for a Workload, changing nothing.
type PlanOut struct {
	Workload string `json:"workload"`
	Revision string `json:"revision"`
	Replicas int32  `json:"replicas"`
	Strategy string `json:"strategy"`
	// Drift is magnitude and urgency as the workload controller rates it.
	Drift   string       `json:"drift"`
	Actions []PlanAction `json:"actions"`
	// Unplaceable counts the new Instances that fit on no node.
	Unplaceable int    `json:"unplaceable"`
	Message     string `json:"message"`
}

// PlanAction is one action of the plan.
type PlanAction struct {
	Type     string `json:"type"`
	Instance string `json:"instance,omitempty"`
	Revision string `json:"revision,omitempty"`
	// Node is where a new Instance would go; empty when it fits nowhere.
	Node   string `json:"node,omitempty"`
	Reason string `json:"reason"`
	// WhyNot is the scheduler's reason, per node, when it fits nowhere.
	WhyNot string `json:"whyNot,omitempty"`
}

func (b *Bridge) addApplyTools() {
	addTool(b, toolSpec{name: "apply_manifest", title: "Apply a manifest", kind: writeTool, mayDestroy: true, idempotent: true,
		description: "Server-side apply of one or more YAML documents (field manager skiff-mcp). Every document is checked by a dry run first; nothing is written unless all pass. dry_run reports what would change. Scaling a Workload to zero asks for confirmation."}, b.applyManifest)
	addTool(b, toolSpec{name: "plan_workload", title: "Plan a Workload", kinds: []string{"Workload", "Node", "Instance"},
		description: "What the controllers would do next if a Workload were applied, changing nothing (as skiff plan): actions, the node for each new Instance, and for one that fits nowhere the scheduler's reason per node."}, b.planWorkload)
}

// maxDocuments bounds one manifest.
const maxDocuments = 100

// decodeManifest splits a manifest into objects.
func decodeManifest(manifest, namespace string) ([]*unstructured.Unstructured, error) {
	docs := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(manifest)))
	var out []*unstructured.Unstructured
	for i := 1; ; i++ {
		doc, err := docs.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("argument manifest: document %d: %w", i, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj := &unstructured.Unstructured{}
		if err := utilyaml.Unmarshal(doc, &obj.Object); err != nil {
			return nil, fmt.Errorf("argument manifest: document %d: %w", i, err)
		}
		if obj.Object == nil {
			continue
		}
		if obj.GetKind() == "" || obj.GetAPIVersion() == "" || obj.GetName() == "" {
			return nil, fmt.Errorf("argument manifest: document %d: apiVersion, kind and metadata.name are required", i)
		}
		if len(out) == maxDocuments {
			return nil, fmt.Errorf("argument manifest: more than %d documents", maxDocuments)
		}
		out = append(out, obj)
	}
	if len(out) == 0 {
		return nil, errors.New("argument manifest: no object in it")
	}
	for _, obj := range out {
		if obj.GetNamespace() == "" {
			obj.SetNamespace(namespace)
		}
	}
	return out, nil
}

func (b *Bridge) applyManifest(ctx context.Context, req *sdk.CallToolRequest, in ApplyIn) (*sdk.CallToolResult, ApplyOut, error) {
	objs, err := decodeManifest(in.Manifest, b.ns(in.Namespace))
	if err != nil {
		return nil, ApplyOut{}, err
	}
	for i, obj := range objs {
		if err := b.checkKind(obj.GetKind()); err != nil {
			return nil, ApplyOut{}, fmt.Errorf("document %d: %w", i+1, err)
		}
	}
	conn, err := b.conns.For(ctx, req.Extra)
	if err != nil {
		return nil, ApplyOut{}, err
	}
	// Every document passes a dry run before any is written.
	out := ApplyOut{DryRun: in.DryRun, Documents: []AppliedDocument{}}
	// A namespace the manifest itself makes does not exist during the dry
	// run: its objects are checked when they are written.
	newNamespaces := map[string]int{}
	for i, obj := range objs {
		check := obj.DeepCopy()
		ns, by := obj.GetNamespace(), newNamespaces[obj.GetNamespace()]
		inNewNamespace := by > 0 && !namespaceExists(ctx, conn, ns)
		if inNewNamespace {
			// Checked in a namespace that exists: validation does not
			// depend on which.
			check.SetNamespace(b.cfg.Namespace)
		}
		doc, err := b.applyOne(ctx, conn, check, true)
		if inNewNamespace {
			doc = AppliedDocument{Object: describeObj(obj),
				Action: fmt.Sprintf("would be created in namespace %s, which document %d makes (checked by a dry run in namespace %s)", ns, by, b.cfg.Namespace)}
		}
		if obj.GetKind() == "Namespace" && obj.GetAPIVersion() == "v1" {
			newNamespaces[obj.GetName()] = i + 1
		}
		if err != nil {
			return nil, ApplyOut{}, fmt.Errorf("document %d (%s): %w; nothing was applied", i+1, describeObj(obj), err)
		}
		doc.Index = i + 1
		out.Documents = append(out.Documents, doc)
	}
	if in.DryRun {
		out.Message = fmt.Sprintf("dry run: %d documents would apply; nothing was changed", len(objs))
		return nil, out, nil
	}
	if zeroed := scaledToZero(ctx, conn, objs); len(zeroed) > 0 {
		if b.cfg.DisableDestructive {
			return nil, ApplyOut{}, refuse("the manifest scales %s to zero, which is disabled on this bridge (--disable-destructive); nothing was applied", strings.Join(zeroed, ", "))
		}
		switch c, res, err := b.confirm(req, in.Confirm, "Apply a manifest that scales "+strings.Join(zeroed, ", ")+" to zero, stopping all their Instances?"); {
		case err != nil:
			return nil, ApplyOut{}, err
		case c == asking:
			return res, ApplyOut{}, nil
		}
	}
	for i, obj := range objs {
		doc, err := b.applyOne(ctx, conn, obj, false)
		if err != nil && i == 0 {
			return nil, ApplyOut{}, fmt.Errorf("document 1 (%s): %w; nothing was applied", describeObj(obj), err)
		}
		if err != nil {
			return nil, ApplyOut{}, fmt.Errorf("document %d (%s): %w; documents 1 to %d were applied, the rest were not", i+1, describeObj(obj), err, i)
		}
		doc.Index = i + 1
		out.Documents[i] = doc
	}
	out.Message = fmt.Sprintf("applied %d documents", len(objs))
	return nil, out, nil
}

// scaledToZero names the Workloads of objs that run Instances now and
// that the manifest scales to zero.
func scaledToZero(ctx context.Context, c client.Reader, objs []*unstructured.Unstructured) []string {
	var out []string
	for _, obj := range objs {
		replicas, found, _ := unstructured.NestedInt64(obj.Object, "spec", "replicas")
		if obj.GetKind() != "Workload" || !found || replicas != 0 {
			continue
		}
		var live skiffv1alpha1.Workload
		if err := c.Get(ctx, client.ObjectKeyFromObject(obj), &live); err == nil && (live.Spec.Replicas == nil || *live.Spec.Replicas > 0) {
			out = append(out, "Workload "+obj.GetNamespace()+"/"+obj.GetName())
		}
	}
	return out
}

func namespaceExists(ctx context.Context, c client.Reader, name string) bool {
	var ns corev1.Namespace
	return c.Get(ctx, client.ObjectKey{Name: name}, &ns) == nil
}

func describeObj(obj *unstructured.Unstructured) string {
	if obj.GetNamespace() == "" {
		return obj.GetKind() + "/" + obj.GetName()
	}
	return obj.GetKind() + "/" + obj.GetNamespace() + "/" + obj.GetName()
}

// applyOne applies obj by server-side apply and compares the result with
// what was there.
func (b *Bridge) applyOne(ctx context.Context, c client.Client, obj *unstructured.Unstructured, dryRun bool) (AppliedDocument, error) {
	doc := AppliedDocument{Object: describeObj(obj)}
	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(obj.GroupVersionKind())
	err := c.Get(ctx, client.ObjectKeyFromObject(obj), live)
	switch {
	case apierrors.IsNotFound(err):
		live = nil
	case err != nil:
		return doc, apiErrorMessage(err)
	}
	isNamespaced, err := c.IsObjectNamespaced(obj)
	if err != nil {
		return doc, err
	}
	if !isNamespaced {
		obj.SetNamespace("")
	}
	opts := []client.ApplyOption{client.FieldOwner(FieldManager), client.ForceOwnership}
	if dryRun {
		opts = append(opts, client.DryRunAll)
	}
	if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), opts...); err != nil {
		return doc, apiErrorMessage(err)
	}
	doc.Action, doc.Changes = compareApplied(live, obj)
	if dryRun {
		doc.Action = "would be " + doc.Action
	}
	return doc, nil
}

// compareApplied names the top-level fields of metadata (labels,
// annotations) and spec whose values differ between live and applied.
func compareApplied(live, applied *unstructured.Unstructured) (string, []string) {
	if live == nil {
		return "created", nil
	}
	var changes []string
	for _, path := range [][]string{{"metadata", "labels"}, {"metadata", "annotations"}} {
		a, _, _ := unstructured.NestedFieldNoCopy(live.Object, path...)
		b, _, _ := unstructured.NestedFieldNoCopy(applied.Object, path...)
		if !reflect.DeepEqual(a, b) {
			changes = append(changes, strings.Join(path, "."))
		}
	}
	liveSpec, _, _ := unstructured.NestedMap(live.Object, "spec")
	appliedSpec, _, _ := unstructured.NestedMap(applied.Object, "spec")
	for _, k := range unionKeys(liveSpec, appliedSpec) {
		if !reflect.DeepEqual(liveSpec[k], appliedSpec[k]) {
			changes = append(changes, "spec."+k)
		}
	}
	if len(changes) == 0 {
		return "unchanged", nil
	}
	return "configured", changes
}

func unionKeys(a, b map[string]any) []string {
	seen := map[string]bool{}
	for k := range a {
		seen[k] = true
	}
	for k := range b {
		seen[k] = true
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (b *Bridge) planWorkload(ctx context.Context, req *sdk.CallToolRequest, in PlanIn) (*sdk.CallToolResult, PlanOut, error) {
	conn, err := b.conns.For(ctx, req.Extra)
	if err != nil {
		return nil, PlanOut{}, err
	}
	w, err := b.planned(ctx, conn, in)
	if err != nil {
		return nil, PlanOut{}, err
	}
	stored, p, err := workload.PreviewApply(ctx, conn, w, scheduler.New(scheduler.Spread))
	if err != nil {
		return nil, PlanOut{}, apiErrorMessage(err)
	}
	return nil, planOut(stored, p, b.budget()), nil
}

// planned is the Workload to plan: exactly one of the arguments' forms.
func (b *Bridge) planned(ctx context.Context, c client.Client, in PlanIn) (*skiffv1alpha1.Workload, error) {
	given := 0
	for _, set := range []bool{in.Manifest != "", in.Workload != nil, in.Name != ""} {
		if set {
			given++
		}
	}
	if given != 1 {
		return nil, errors.New("arguments: give exactly one of manifest, workload or name")
	}
	ns := b.ns(in.Namespace)
	var u *unstructured.Unstructured
	switch {
	case in.Name != "":
		var w skiffv1alpha1.Workload
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: in.Name}, &w); err != nil {
			return nil, apiError("workload "+ns+"/"+in.Name, err)
		}
		return &w, nil
	case in.Workload != nil:
		var err error
		if u, err = in.Workload.applyObject(b.ns(orDefault(in.Workload.Namespace, in.Namespace))); err != nil {
			return nil, fmt.Errorf("argument workload: %w", err)
		}
		var w skiffv1alpha1.Workload
		if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, &w, true); err != nil {
			return nil, fmt.Errorf("argument workload: %w", err)
		}
		return &w, nil
	default:
		objs, err := decodeManifest(in.Manifest, ns)
		if err != nil {
			return nil, err
		}
		if len(objs) != 1 || objs[0].GetKind() != "Workload" {
			return nil, errors.New("argument manifest: plan_workload takes one Workload")
		}
		u = objs[0]
	}
	var w skiffv1alpha1.Workload
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, &w, true); err != nil {
		return nil, fmt.Errorf("argument manifest: %w", err)
	}
	return &w, nil
}

func planOut(w *skiffv1alpha1.Workload, p *workload.Preview, budget int) PlanOut {
	cmp := p.Comparison
	out := PlanOut{
		Workload: w.Namespace + "/" + w.Name, Revision: cmp.UpdateRevision, Replicas: cmp.Replicas, Strategy: string(cmp.Strategy),
		Drift: fmt.Sprintf("magnitude %d, urgency %s (%d to add, %d out of date, %d surplus, %d finished)",
			cmp.Magnitude(), cmp.Urgency, cmp.Additions, cmp.Modifications, cmp.Deletions, cmp.Replacements),
		Actions: []PlanAction{},
	}
	for _, pl := range p.Placements {
		if pl.Node == "" {
			out.Unplaceable++
		}
	}
	placed, used := 0, 0
	for _, a := range p.Actions {
		act := PlanAction{Type: string(a.Type), Revision: a.Revision, Reason: a.Reason}
		if a.Instance != nil {
			act.Instance = a.Instance.Name
			act.Node = a.Instance.Spec.NodeName
		}
		if a.Type != workload.Delete {
			pl := p.Placements[placed]
			placed++
			act.Node, act.WhyNot = pl.Node, pl.WhyNot
		}
		if used += wireSize(act); used > budget {
			out.Message = fmt.Sprintf("%d of %d actions shown (the response cap); ", len(out.Actions), len(p.Actions))
			break
		}
		out.Actions = append(out.Actions, act)
	}
	switch {
	case len(p.Actions) == 0:
		out.Message += "no changes: the next reconciliation does nothing"
	case out.Unplaceable > 0:
		out.Message += fmt.Sprintf("%d new Instances fit on no node: see whyNot", out.Unplaceable)
	default:
		out.Message += "every new Instance has a node; a rollout takes several steps, this is the first"
	}
	return out
}

func (b *Bridge) addTools() {
	b.addWorkloadTools()
	b.addClusterTools()
	b.addInstanceTools()
	b.addApplyTools()
}
