package mcp

import (
	"context"
	"errors"
	"fmt"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// Scope is where a list looks.
type Scope struct {
	Namespace     string `json:"namespace,omitempty" jsonschema:"namespace; default: the bridge's"`
	AllNamespaces bool   `json:"all_namespaces,omitempty" jsonschema:"list every namespace"`
}

// Paging is a list's page.
type Paging struct {
	LabelSelector string `json:"label_selector,omitempty" jsonschema:"a label selector such as app=web"`
	Limit         int    `json:"limit,omitempty" jsonschema:"page size, 1 to 500; default 50"`
	Continue      string `json:"continue,omitempty" jsonschema:"the continue token of the previous page"`
}

// ListWorkloadsIn are list_workloads' arguments.
type ListWorkloadsIn struct {
	Scope
	Paging
	NameContains string `json:"name_contains,omitempty" jsonschema:"only Workloads whose name contains this"`
}

// NamedIn names one namespaced object.
type NamedIn struct {
	Name      string `json:"name" jsonschema:"the object's name"`
	Namespace string `json:"namespace,omitempty" jsonschema:"namespace; default: the bridge's"`
}

// WorkloadOut is a Workload after a write.
type WorkloadOut struct {
	Workload WorkloadSummary `json:"workload"`
	Message  string          `json:"message"`
}

// GetWorkloadOut is one Workload in full, with its Instances' summaries.
type GetWorkloadOut struct {
	Summary   WorkloadSummary   `json:"summary"`
	Object    map[string]any    `json:"object"`
	Instances []InstanceSummary `json:"instances"`
	Note      string            `json:"note,omitempty"`
}

// UpdateWorkloadIn are update_workload's arguments: only what is given changes.
type UpdateWorkloadIn struct {
	Name      string            `json:"name" jsonschema:"the Workload's name"`
	Namespace string            `json:"namespace,omitempty" jsonschema:"namespace; default: the bridge's"`
	Container string            `json:"container,omitempty" jsonschema:"the container to change; may be omitted when there is one"`
	Image     string            `json:"image,omitempty" jsonschema:"a new image: starts a rolling update"`
	Env       map[string]string `json:"env,omitempty" jsonschema:"environment variables to set (others are kept)"`
	CPUCores  float64           `json:"cpu_cores,omitempty" jsonschema:"new CPU request and limit in cores"`
	MemoryMB  int64             `json:"memory_mb,omitempty" jsonschema:"new memory request and limit in MiB"`
	Labels    map[string]string `json:"labels,omitempty" jsonschema:"labels to set on the Workload object (not its Instances)"`
}

// ScaleIn are scale_workload's arguments.
type ScaleIn struct {
	Name      string `json:"name" jsonschema:"the Workload's name"`
	Namespace string `json:"namespace,omitempty" jsonschema:"namespace; default: the bridge's"`
	Replicas  int32  `json:"replicas" jsonschema:"the number of Instances to run"`
	Confirm   bool   `json:"confirm,omitempty" jsonschema:"true once the user agreed to scale to zero, for clients that cannot be asked"`
}

// DeleteIn are delete_workload's arguments.
type DeleteIn struct {
	Name      string `json:"name" jsonschema:"the Workload's name"`
	Namespace string `json:"namespace,omitempty" jsonschema:"namespace; default: the bridge's"`
	Confirm   bool   `json:"confirm,omitempty" jsonschema:"true once the user agreed, for clients that cannot be asked"`
}

// DeleteOut says what was deleted.
type DeleteOut struct {
	Deleted string `json:"deleted"`
	Message string `json:"message"`
}

func (b *Bridge) addWorkloadTools() {
	wl := []string{"Workload"}
	addTool(b, toolSpec{name: "list_workloads", title: "List Workloads", kinds: wl,
		description: "List Workloads, one line each (ready/desired, images, health), paged."}, b.listWorkloads)
	addTool(b, toolSpec{name: "get_workload", title: "Get a Workload", kinds: wl,
		description: "One Workload in full (spec and status, without managed fields) with a summary of its Instances."}, b.getWorkload)
	addTool(b, toolSpec{name: "create_workload", title: "Create a Workload", kind: writeTool, kinds: wl,
		description: "Create a Workload of one container (server-side apply, field manager skiff-mcp). cpu_cores and memory_mb are both requested and the limit. Refused if it exists: use update_workload. Preview with plan_workload first."}, b.createWorkload)
	addTool(b, toolSpec{name: "update_workload", title: "Update a Workload", kind: writeTool, idempotent: true, kinds: wl,
		description: "Change a Workload's image, environment, resources or labels; only what is given changes (a patch). A new image or resources roll out gradually."}, b.updateWorkload)
	addTool(b, toolSpec{name: "scale_workload", title: "Scale a Workload", kind: writeTool, mayDestroy: true, idempotent: true, kinds: wl,
		description: "Set a Workload's replicas. Scaling down stops Instances; scaling to zero asks for confirmation."}, b.scaleWorkload)
	addTool(b, toolSpec{name: "delete_workload", title: "Delete a Workload", kind: destructiveTool, idempotent: true, kinds: wl,
		description: "Delete a Workload and its Instances. Asks the user to confirm (or needs confirm: true)."}, b.deleteWorkload)
	addTool(b, toolSpec{name: "rollback_workload", title: "Roll a Workload back", kind: writeTool, kinds: wl,
		description: "Return a Workload's template to the last revision that was available, rolling it out gradually."}, b.rollbackWorkload)
	addTool(b, toolSpec{name: "restart_workload", title: "Restart a Workload", kind: writeTool, kinds: wl,
		description: "Replace every Instance of a Workload with a new one, within its rolling-update budget (as kubectl rollout restart)."}, b.restartWorkload)
}

func (b *Bridge) listWorkloads(ctx context.Context, req *sdk.CallToolRequest, in ListWorkloadsIn) (*sdk.CallToolResult, Page[WorkloadSummary], error) {
	var zero Page[WorkloadSummary]
	n, conn, err := b.startList(ctx, req, in.Paging)
	if err != nil {
		return nil, zero, err
	}
	opts, err := listOptions(b.listNamespace(in.Namespace, in.AllNamespaces), in.LabelSelector)
	if err != nil {
		return nil, zero, err
	}
	now := b.now()
	fetch := fetchList(conn, func() *skiffv1alpha1.WorkloadList { return &skiffv1alpha1.WorkloadList{} },
		func(l *skiffv1alpha1.WorkloadList) []skiffv1alpha1.Workload { return l.Items }, opts...)
	page, err := paginate(ctx, fetch, func(w *skiffv1alpha1.Workload) (WorkloadSummary, bool) {
		return summarizeWorkload(w, now), in.NameContains == "" || containsFold(w.Name, in.NameContains)
	}, n, b.budget(), in.Continue)
	return nil, page, apiError("listing workloads", err)
}

// listNamespace is "" (every namespace) or the namespace to list.
func (b *Bridge) listNamespace(arg string, all bool) string {
	if all {
		return ""
	}
	return b.ns(arg)
}

func listOptions(namespace, selector string, more ...client.ListOption) ([]client.ListOption, error) {
	opts := append([]client.ListOption{}, more...)
	if namespace != "" {
		opts = append(opts, client.InNamespace(namespace))
	}
	if selector != "" {
		sel, err := labels.Parse(selector)
		if err != nil {
			return nil, fmt.Errorf("argument label_selector: %w", err)
		}
		opts = append(opts, client.MatchingLabelsSelector{Selector: sel})
	}
	return opts, nil
}

// maxInstancesShown caps the Instances get_workload and get_node list.
const maxInstancesShown = 20

func (b *Bridge) getWorkload(ctx context.Context, req *sdk.CallToolRequest, in NamedIn) (*sdk.CallToolResult, GetWorkloadOut, error) {
	conn, err := b.conns.For(ctx, req.Extra)
	if err != nil {
		return nil, GetWorkloadOut{}, err
	}
	out, err := b.workloadView(ctx, conn, types.NamespacedName{Namespace: b.ns(in.Namespace), Name: in.Name})
	return nil, out, err
}

// workloadView is one Workload in full with its Instances' summaries:
// get_workload's answer and its resource's.
func (b *Bridge) workloadView(ctx context.Context, conn *Conn, key types.NamespacedName) (GetWorkloadOut, error) {
	var w skiffv1alpha1.Workload
	if err := conn.Get(ctx, key, &w); err != nil {
		return GetWorkloadOut{}, apiError("workload "+key.String(), err)
	}
	now := b.now()
	out := GetWorkloadOut{Summary: summarizeWorkload(&w, now), Instances: []InstanceSummary{}}
	var err error
	if out.Object, err = cleanObject(&w); err != nil {
		return GetWorkloadOut{}, err
	}
	if b.cfg.denied("Instance") {
		return out, nil
	}
	insts, err := b.ownedInstances(ctx, conn, &w)
	if err != nil {
		return GetWorkloadOut{}, err
	}
	out.Instances, out.Note = firstInstances(insts, now, "workload="+w.Name)
	return out, nil
}

// firstInstances summarizes the first maxInstancesShown of insts, with a
// note saying where the rest are when there are more.
func firstInstances(insts []skiffv1alpha1.Instance, now time.Time, filter string) ([]InstanceSummary, string) {
	out := []InstanceSummary{}
	for i := range insts {
		if len(out) == maxInstancesShown {
			return out, fmt.Sprintf("%d of %d Instances shown: list_instances with %s has them all", maxInstancesShown, len(insts), filter)
		}
		out = append(out, summarizeInstance(&insts[i], now))
	}
	return out, ""
}

// ownedInstances are the Instances w's selector matches that w owns.
func (b *Bridge) ownedInstances(ctx context.Context, c client.Reader, w *skiffv1alpha1.Workload) ([]skiffv1alpha1.Instance, error) {
	var list skiffv1alpha1.InstanceList
	opts := []client.ListOption{client.InNamespace(w.Namespace)}
	if w.Spec.Selector != nil && len(w.Spec.Selector.MatchLabels) > 0 {
		opts = append(opts, client.MatchingLabels(w.Spec.Selector.MatchLabels))
	}
	if err := c.List(ctx, &list, opts...); err != nil {
		return nil, apiError("listing the instances of "+w.Name, err)
	}
	out := list.Items[:0]
	for _, inst := range list.Items {
		for _, ref := range inst.OwnerReferences {
			if ref.UID == w.UID {
				out = append(out, inst)
				break
			}
		}
	}
	return out, nil
}

func (b *Bridge) createWorkload(ctx context.Context, req *sdk.CallToolRequest, in WorkloadArgs) (*sdk.CallToolResult, WorkloadOut, error) {
	ns := b.ns(in.Namespace)
	u, err := in.applyObject(ns)
	if err != nil {
		return nil, WorkloadOut{}, err
	}
	conn, err := b.conns.For(ctx, req.Extra)
	if err != nil {
		return nil, WorkloadOut{}, err
	}
	key := types.NamespacedName{Namespace: ns, Name: in.Name}
	var existing skiffv1alpha1.Workload
	switch err := conn.Get(ctx, key, &existing); {
	case err == nil:
		return nil, WorkloadOut{}, fmt.Errorf("workload %s already exists: change it with update_workload or scale_workload", key)
	case !apierrors.IsNotFound(err):
		return nil, WorkloadOut{}, apiError("workload "+key.String(), err)
	}
	if err := conn.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		return nil, WorkloadOut{}, apiError("creating workload "+key.String(), err)
	}
	// The apply answers with the stored object.
	var w skiffv1alpha1.Workload
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &w); err != nil {
		return nil, WorkloadOut{}, fmt.Errorf("workload %s: %w", key, err)
	}
	return nil, WorkloadOut{Workload: summarizeWorkload(&w, b.now()),
		Message: fmt.Sprintf("created; get_workload %s shows when its Instances run", in.Name)}, nil
}

func (b *Bridge) updateWorkload(ctx context.Context, req *sdk.CallToolRequest, in UpdateWorkloadIn) (*sdk.CallToolResult, WorkloadOut, error) {
	conn, w, err := b.workload(ctx, req, in.Name, in.Namespace)
	if err != nil {
		return nil, WorkloadOut{}, err
	}
	patch, err := updatePatch(w, in)
	if err != nil {
		return nil, WorkloadOut{}, err
	}
	if err := conn.Patch(ctx, w, client.RawPatch(types.StrategicMergePatchType, patch), client.FieldOwner(FieldManager)); err != nil {
		return nil, WorkloadOut{}, apiError("updating workload "+w.Namespace+"/"+w.Name, err)
	}
	return nil, WorkloadOut{Workload: summarizeWorkload(w, b.now()), Message: "updated; a changed template rolls out within the Workload's budget"}, nil
}

// workload reads one Workload as the caller.
func (b *Bridge) workload(ctx context.Context, req *sdk.CallToolRequest, name, namespace string) (*Conn, *skiffv1alpha1.Workload, error) {
	conn, err := b.conns.For(ctx, req.Extra)
	if err != nil {
		return nil, nil, err
	}
	if name == "" {
		return nil, nil, fmt.Errorf("argument name: required")
	}
	key := types.NamespacedName{Namespace: b.ns(namespace), Name: name}
	var w skiffv1alpha1.Workload
	if err := conn.Get(ctx, key, &w); err != nil {
		return nil, nil, apiError("workload "+key.String(), err)
	}
	return conn, &w, nil
}

func (b *Bridge) scaleWorkload(ctx context.Context, req *sdk.CallToolRequest, in ScaleIn) (*sdk.CallToolResult, WorkloadOut, error) {
	if in.Replicas == 0 && b.cfg.DisableDestructive {
		return nil, WorkloadOut{}, refuse("scaling to zero is disabled on this bridge (--disable-destructive)")
	}
	conn, w, err := b.workload(ctx, req, in.Name, in.Namespace)
	if err != nil {
		return nil, WorkloadOut{}, err
	}
	if in.Replicas == 0 {
		switch c, res, err := b.confirm(req, in.Confirm, fmt.Sprintf("Scale workload %s/%s to zero, stopping all its Instances?", w.Namespace, w.Name)); {
		case err != nil:
			return nil, WorkloadOut{}, err
		case c == asking:
			return res, WorkloadOut{}, nil
		}
	}
	patch := fmt.Appendf(nil, `{"spec":{"replicas":%d}}`, in.Replicas)
	if err := conn.Patch(ctx, w, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(FieldManager)); err != nil {
		return nil, WorkloadOut{}, apiError("scaling workload "+w.Namespace+"/"+w.Name, err)
	}
	return nil, WorkloadOut{Workload: summarizeWorkload(w, b.now()), Message: fmt.Sprintf("scaled to %d", in.Replicas)}, nil
}

func (b *Bridge) deleteWorkload(ctx context.Context, req *sdk.CallToolRequest, in DeleteIn) (*sdk.CallToolResult, DeleteOut, error) {
	conn, w, err := b.workload(ctx, req, in.Name, in.Namespace)
	if err != nil {
		return nil, DeleteOut{}, err
	}
	insts, err := b.ownedInstances(ctx, conn, w)
	if err != nil {
		return nil, DeleteOut{}, err
	}
	question := fmt.Sprintf("Delete workload %s/%s and its %d Instances?", w.Namespace, w.Name, len(insts))
	switch c, res, err := b.confirm(req, in.Confirm, question); {
	case err != nil:
		return nil, DeleteOut{}, err
	case c == asking:
		return res, DeleteOut{}, nil
	}
	if err := conn.Delete(ctx, w, client.PropagationPolicy("Background"), client.Preconditions{UID: &w.UID}); err != nil {
		return nil, DeleteOut{}, apiError("deleting workload "+w.Namespace+"/"+w.Name, err)
	}
	return nil, DeleteOut{Deleted: "Workload/" + w.Namespace + "/" + w.Name,
		Message: fmt.Sprintf("deleted; its %d Instances are stopped and removed in the background", len(insts))}, nil
}

func (b *Bridge) rollbackWorkload(ctx context.Context, req *sdk.CallToolRequest, in NamedIn) (*sdk.CallToolResult, WorkloadOut, error) {
	var w *skiffv1alpha1.Workload
	var from string
	// The template goes back as it was read: a write in between (the
	// controller's status) conflicts, and the rollback reads again.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		conn, live, err := b.workload(ctx, req, in.Name, in.Namespace)
		if err != nil {
			return err
		}
		w = live
		last := w.Status.LastAvailableTemplate
		if last == nil {
			return refuse("workload %s/%s has no revision that became available to roll back to", w.Namespace, w.Name)
		}
		// The template, not the revision the controller last saw: a bad
		// update may not be observed yet.
		if apiequality.Semantic.DeepEqual(w.Spec.Template, *last) {
			return refuse("workload %s/%s already has the template of revision %s, its last available one", w.Namespace, w.Name, w.Status.LastAvailableRevision)
		}
		before := w.DeepCopy()
		from = before.Status.UpdateRevision
		w.Spec.Template = *last.DeepCopy()
		return conn.Patch(ctx, w, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}), client.FieldOwner(FieldManager))
	})
	var r refusal
	switch {
	case errors.As(err, &r):
		return nil, WorkloadOut{}, err
	case err != nil && w != nil:
		return nil, WorkloadOut{}, apiError("rolling back workload "+w.Namespace+"/"+w.Name, err)
	case err != nil:
		return nil, WorkloadOut{}, err
	}
	return nil, WorkloadOut{Workload: summarizeWorkload(w, b.now()),
		Message: fmt.Sprintf("rolling back from revision %s to %s", from, w.Status.LastAvailableRevision)}, nil
}

// RestartedAtAnnotation on a Workload's template makes a new revision,
// so every Instance is replaced (kubectl rollout restart's annotation).
const RestartedAtAnnotation = "skiff.dev/restartedAt"

func (b *Bridge) restartWorkload(ctx context.Context, req *sdk.CallToolRequest, in NamedIn) (*sdk.CallToolResult, WorkloadOut, error) {
	conn, w, err := b.workload(ctx, req, in.Name, in.Namespace)
	if err != nil {
		return nil, WorkloadOut{}, err
	}
	at := b.now().UTC().Format(time.RFC3339)
	patch := fmt.Appendf(nil, `{"spec":{"template":{"metadata":{"annotations":{%q:%q}}}}}`, RestartedAtAnnotation, at)
	if err := conn.Patch(ctx, w, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(FieldManager)); err != nil {
		return nil, WorkloadOut{}, apiError("restarting workload "+w.Namespace+"/"+w.Name, err)
	}
	return nil, WorkloadOut{Workload: summarizeWorkload(w, b.now()), Message: "restarting: every Instance is replaced within the rolling-update budget"}, nil
}
