package workload

import (
	"sort"

	"k8s.io/apimachinery/pkg/types"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// ActionType is what an action does.
type ActionType string

// Action types, in the order a plan carries them out.
const (
	// Replace deletes a finished Instance and creates its successor of the
	// update revision.
	Replace ActionType = "Replace"
	// Delete deletes a live Instance: surplus, or of an old revision.
	Delete ActionType = "Delete"
	// Create creates an Instance of the update revision.
	Create ActionType = "Create"
)

// Action is one step of a plan.
type Action struct {
	Type ActionType
	// Instance is the Instance a Delete or Replace removes.
	Instance *skiffv1alpha1.Instance
	// Revision is the revision a Create or Replace makes.
	Revision string
	// Reason says why, in a few words, for Events and `skiff plan`.
	Reason string
	// Precondition must still hold when the action runs: a Delete or
	// Replace removes only the Instance of this UID, never a namesake.
	Precondition types.UID
}

// Plan is PLAN: a pure function from a comparison to the ordered actions
// that move the Workload one step toward its desired state without breaking
// the strategy's budgets. Run again after every change, it finishes the
// rollout; no step leaves fewer than MinAvailable ready Instances it found
// ready, nor more than Replicas+MaxSurge live ones.
func Plan(c *Comparison) []Action {
	var actions []Action
	if c.Strategy == skiffv1alpha1.RecreateStrategy {
		actions = planRecreate(c)
	} else {
		actions = planRollingUpdate(c)
	}
	sort.SliceStable(actions, func(i, j int) bool { return order(actions[i].Type) < order(actions[j].Type) })
	return actions
}

func order(t ActionType) int {
	switch t {
	case Replace:
		return 0
	case Delete:
		return 1
	}
	return 2
}

// planRollingUpdate makes new Instances while the total stays within
// Replicas+MaxSurge, and removes old ones while the ready count stays at
// MinAvailable or more, as a Kubernetes Deployment does.
func planRollingUpdate(c *Comparison) []Action {
	cur := int32(len(c.Current))
	alive := c.Alive()
	// Instances of the update revision beyond Replicas go first: they
	// cost no rollout progress.
	actions, surplus := scale(c, max(min(c.Replicas-cur, c.Replicas+c.MaxSurge-alive), 0))
	// Old Instances go while enough stay ready. An Instance that is not
	// ready costs nothing; a ready one only what the budget allows.
	// Surplus deletions above come out of the same budget.
	ready := c.Available() - c.countAvailable(surplus)
	budget := alive - int32(len(surplus)) - c.MinAvailable() - (cur - int32(len(surplus)) - c.countAvailable(c.Current) + c.countAvailable(surplus))
	for _, inst := range deletionOrder(c.Outdated) {
		if budget <= 0 {
			break
		}
		if c.available(inst) {
			if ready <= c.MinAvailable() {
				break
			}
			ready--
		}
		budget--
		actions = append(actions, deleteAction(inst, "rolling update"))
	}
	return actions
}

// planRecreate deletes every old Instance, waits until they are all gone,
// then creates the new ones.
func planRecreate(c *Comparison) []Action {
	var actions []Action
	// Finished old Instances count too: one lost with its node may still
	// run there until the node answers again.
	if len(c.Outdated) > 0 || hasOtherRevision(c.Terminating, c.UpdateRevision) || hasOtherRevision(c.Finished, c.UpdateRevision) {
		for _, inst := range deletionOrder(c.Outdated) {
			actions = append(actions, deleteAction(inst, "recreate"))
		}
		// Finished Instances are removed but not yet succeeded.
		return append(actions, deleteFinishedBeyond(c, 0)...)
	}
	actions, _ = scale(c, max(c.Replicas-int32(len(c.Current)), 0))
	return actions
}

// scale makes creates new Instances of the update revision (successors
// of finished ones first), removes the finished ones left over, and
// deletes current Instances beyond Replicas (surplus), in deletion order.
func scale(c *Comparison, creates int32) (actions []Action, surplus []*skiffv1alpha1.Instance) {
	actions = replaceFinished(c, creates)
	for range creates - int32(len(actions)) {
		actions = append(actions, Action{Type: Create, Revision: c.UpdateRevision, Reason: createReason(c)})
	}
	actions = append(actions, deleteFinishedBeyond(c, creates)...)
	// Sorted only when some go: a Workload scaling up is reconciled on
	// each of its Instances' events, and sorting them all each time was
	// quadratic in its replicas.
	if n := int32(len(c.Current)) - c.Replicas; n > 0 {
		surplus = deletionOrder(c.Current)[:n]
	}
	for _, inst := range surplus {
		actions = append(actions, deleteAction(inst, "scale down"))
	}
	return actions, surplus
}

// replaceFinished pairs up to n finished Instances with a successor.
func replaceFinished(c *Comparison, n int32) []Action {
	var actions []Action
	for _, inst := range c.Finished[:min(n, int32(len(c.Finished)))] {
		actions = append(actions, Action{
			Type: Replace, Instance: inst, Revision: c.UpdateRevision,
			Reason: "instance " + string(inst.Status.Phase), Precondition: inst.UID,
		})
	}
	return actions
}

// deleteFinishedBeyond deletes the finished Instances after the first n,
// which are replaced: they hold nothing, so they go at once.
func deleteFinishedBeyond(c *Comparison, n int32) []Action {
	var actions []Action
	for _, inst := range c.Finished[min(n, int32(len(c.Finished))):] {
		actions = append(actions, deleteAction(inst, "instance "+string(inst.Status.Phase)))
	}
	return actions
}

func deleteAction(inst *skiffv1alpha1.Instance, reason string) Action {
	return Action{Type: Delete, Instance: inst, Reason: reason, Precondition: inst.UID}
}

func createReason(c *Comparison) string {
	if len(c.Outdated) > 0 {
		return "rolling update"
	}
	return "scale up"
}

func hasOtherRevision(insts []*skiffv1alpha1.Instance, rev string) bool {
	for _, inst := range insts {
		if inst.Labels[skiffv1alpha1.RevisionLabel] != rev {
			return true
		}
	}
	return false
}

// deletionOrder sorts Instances by how cheap they are to lose: unscheduled
// first, then not ready, then the newest (Kubernetes' ReplicaSet order).
func deletionOrder(insts []*skiffv1alpha1.Instance) []*skiffv1alpha1.Instance {
	out := append([]*skiffv1alpha1.Instance(nil), insts...)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if (a.Spec.NodeName == "") != (b.Spec.NodeName == "") {
			return a.Spec.NodeName == ""
		}
		if Ready(a) != Ready(b) {
			return !Ready(a)
		}
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.After(b.CreationTimestamp.Time)
		}
		return a.Name > b.Name
	})
	return out
}
