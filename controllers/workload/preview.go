package workload

import (
	"context"
	"fmt"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/controllers/scheduler"
)

// Preview is what the controller would do next for a Workload, and where
// the scheduler would put each new Instance: `skiff plan`.
type Preview struct {
	Comparison *Comparison
	Actions    []Action
	// Placements has one entry per action that makes an Instance, in order.
	Placements []Placement
}

// Placement is the scheduler's verdict on one new Instance.
type Placement struct {
	// Node is where it would be bound; empty when it fits nowhere.
	Node string
	// WhyNot is the scheduler's no-fit message when Node is empty.
	WhyNot string
}

// PreviewApply previews w as if it were applied: a dry-run create (new)
// or update (existing) gives the object as the server would store it,
// defaults and validation included, and PreviewPlan runs on that. It
// returns the stored form and the preview; nothing is written.
func PreviewApply(ctx context.Context, c client.Client, w *skiffv1alpha1.Workload, sched *scheduler.Scheduler) (*skiffv1alpha1.Workload, *Preview, error) {
	w = w.DeepCopy()
	var live skiffv1alpha1.Workload
	err := c.Get(ctx, client.ObjectKeyFromObject(w), &live)
	switch {
	case apierrors.IsNotFound(err):
		err = c.Create(ctx, w, client.DryRunAll)
	case err == nil:
		live.Spec = w.Spec
		w = &live
		err = c.Update(ctx, w, client.DryRunAll)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("workload %s/%s: %w", w.Namespace, w.Name, err)
	}
	p, err := PreviewPlan(ctx, c, w, sched)
	if err != nil {
		return nil, nil, err
	}
	return w, p, nil
}

// PreviewPlan runs SENSE (through r, a live client), COMPARE and PLAN for w
// as the controller would, then schedules each Instance the plan makes
// with sched on the cluster as it would be once the plan's deletions are
// done, each placement counting for the next. Nothing is written.
func PreviewPlan(ctx context.Context, r client.Reader, w *skiffv1alpha1.Workload, sched *scheduler.Scheduler) (*Preview, error) {
	snap, err := Sensor{Reader: r, WithNodes: true}.Sense(ctx, w)
	if err != nil {
		return nil, err
	}
	cmp := Compare(snap)
	p := &Preview{Comparison: cmp, Actions: Plan(cmp)}

	var all skiffv1alpha1.InstanceList
	if err := r.List(ctx, &all); err != nil {
		return nil, fmt.Errorf("listing instances: %w", err)
	}
	deleted := map[types.UID]bool{}
	for _, a := range p.Actions {
		if a.Instance != nil {
			deleted[a.Precondition] = true
		}
	}
	var remaining []*skiffv1alpha1.Instance
	for i := range all.Items {
		if !deleted[all.Items[i].UID] {
			remaining = append(remaining, &all.Items[i])
		}
	}
	infos := scheduler.NewCache(0).Snapshot(snap.Nodes, remaining)
	byName := map[string]*scheduler.NodeInfo{}
	for _, n := range infos {
		byName[n.Node.Name] = n
	}
	for _, a := range p.Actions {
		if a.Type == Delete {
			continue
		}
		inst := NewInstance(w, a.Revision)
		// The apiserver defaults every Instance the same way.
		skiffv1alpha1.SetDefaults_Instance(inst)
		res := sched.Schedule(inst, infos)
		if res.Node == "" {
			p.Placements = append(p.Placements, Placement{WhyNot: res.Message(len(infos))})
			continue
		}
		inst.Spec.NodeName = res.Node
		byName[res.Node].Add(inst)
		p.Placements = append(p.Placements, Placement{Node: res.Node})
	}
	return p, nil
}
