package gc

import (
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// ownerState is what a dependent learns about one of its owners.
type ownerState int

const (
	// ownerSolid exists with the referenced UID and is not deleting its
	// dependents.
	ownerSolid ownerState = iota
	// ownerUnresolvable cannot be looked up (unknown kind, or a namespaced
	// owner of a cluster-scoped object). Kubernetes keeps such dependents,
	// and so do we: not knowing is not the same as gone.
	ownerUnresolvable
	// ownerDangling is absent, or present under another UID.
	ownerDangling
	// ownerWaiting is being deleted in the foreground: it waits for its
	// dependents to go.
	ownerWaiting
)

// decision is what to do with a dependent.
type decision struct {
	// Delete the dependent with Policy.
	Delete bool
	Policy metav1.DeletionPropagation
	// DropRefs are the UIDs of owner references to remove because a live
	// owner remains: dangling owners, and waiting owners that must not be
	// held up by an object that is staying.
	DropRefs []types.UID
}

// decide is Kubernetes' rule for a dependent that is not being deleted:
// it stays while one owner is solid (losing its references to gone and
// waiting owners), and is deleted once none is. The deletion follows the
// dependent's own propagation finalizer if it has one; otherwise it is in
// the foreground when an owner waits for it, so that the owner also waits
// for the dependent's dependents, and in the background else.
func decide(dep metav1.Object, states map[types.UID]ownerState) decision {
	refs := dep.GetOwnerReferences()
	if len(refs) == 0 {
		return decision{}
	}
	var solid, waiting bool
	var drop []types.UID
	for _, ref := range refs {
		switch states[ref.UID] {
		case ownerSolid, ownerUnresolvable:
			solid = true
		case ownerWaiting:
			waiting = true
			drop = append(drop, ref.UID)
		case ownerDangling:
			drop = append(drop, ref.UID)
		}
	}
	if solid {
		return decision{DropRefs: drop}
	}
	policy := metav1.DeletePropagationBackground
	switch {
	case slices.Contains(dep.GetFinalizers(), metav1.FinalizerOrphanDependents):
		policy = metav1.DeletePropagationOrphan
	case waiting, slices.Contains(dep.GetFinalizers(), metav1.FinalizerDeleteDependents):
		policy = metav1.DeletePropagationForeground
	}
	return decision{Delete: true, Policy: policy}
}

// stateOf classifies an owner that exists with the referenced UID.
func stateOf(owner metav1.Object) ownerState {
	if owner.GetDeletionTimestamp() != nil && slices.Contains(owner.GetFinalizers(), metav1.FinalizerDeleteDependents) {
		return ownerWaiting
	}
	return ownerSolid
}

// refersTo reports whether refs name the owner with uid.
func refersTo(refs []metav1.OwnerReference, uid types.UID) bool {
	return slices.ContainsFunc(refs, func(r metav1.OwnerReference) bool { return r.UID == uid })
}

// blocks reports whether dep holds up the foreground deletion of the
// owner with uid: it still exists and references it with
// blockOwnerDeletion.
func blocks(dep metav1.Object, uid types.UID) bool {
	return slices.ContainsFunc(dep.GetOwnerReferences(), func(r metav1.OwnerReference) bool {
		return r.UID == uid && r.BlockOwnerDeletion != nil && *r.BlockOwnerDeletion
	})
}

// withoutRefs returns refs minus those whose UID is in drop.
func withoutRefs(refs []metav1.OwnerReference, drop []types.UID) []metav1.OwnerReference {
	return slices.DeleteFunc(slices.Clone(refs), func(r metav1.OwnerReference) bool {
		return slices.Contains(drop, r.UID)
	})
}

// ownerUIDs is the index function behind ownerUIDIndex.
func ownerUIDs(o metav1.Object) []string {
	refs := o.GetOwnerReferences()
	out := make([]string, 0, len(refs))
	for _, r := range refs {
		out = append(out, string(r.UID))
	}
	return out
}
