package gc

import (
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

func TestDecide(t *testing.T) {
	ref := func(uid string) metav1.OwnerReference {
		return metav1.OwnerReference{APIVersion: "skiff.dev/v1alpha1", Kind: "Workload", Name: uid, UID: types.UID(uid)}
	}
	dep := func(finalizers []string, refs ...metav1.OwnerReference) *metav1.ObjectMeta {
		return &metav1.ObjectMeta{Name: "web-1", Namespace: "default", OwnerReferences: refs, Finalizers: finalizers}
	}
	tests := []struct {
		name   string
		dep    *metav1.ObjectMeta
		states map[types.UID]ownerState
		want   decision
	}{
		{"no owners: never collected", dep(nil), nil, decision{}},
		{"live owner", dep(nil, ref("a")), map[types.UID]ownerState{"a": ownerSolid}, decision{}},
		{"owner gone: background", dep(nil, ref("a")), map[types.UID]ownerState{"a": ownerDangling},
			decision{Delete: true, Policy: metav1.DeletePropagationBackground}},
		{"owner waiting: foreground", dep(nil, ref("a")), map[types.UID]ownerState{"a": ownerWaiting},
			decision{Delete: true, Policy: metav1.DeletePropagationForeground}},
		{"one gone, one waiting: foreground", dep(nil, ref("a"), ref("b")), map[types.UID]ownerState{"a": ownerDangling, "b": ownerWaiting},
			decision{Delete: true, Policy: metav1.DeletePropagationForeground}},
		{"own orphan finalizer wins", dep([]string{metav1.FinalizerOrphanDependents}, ref("a")), map[types.UID]ownerState{"a": ownerWaiting},
			decision{Delete: true, Policy: metav1.DeletePropagationOrphan}},
		{"own foreground finalizer", dep([]string{metav1.FinalizerDeleteDependents}, ref("a")), map[types.UID]ownerState{"a": ownerDangling},
			decision{Delete: true, Policy: metav1.DeletePropagationForeground}},
		{"second owner lives: refs to gone and waiting owners dropped", dep(nil, ref("a"), ref("b"), ref("c")),
			map[types.UID]ownerState{"a": ownerDangling, "b": ownerSolid, "c": ownerWaiting},
			decision{DropRefs: []types.UID{"a", "c"}}},
		{"unresolvable owner keeps the object", dep(nil, ref("a"), ref("b")), map[types.UID]ownerState{"a": ownerDangling, "b": ownerUnresolvable},
			decision{DropRefs: []types.UID{"a"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decide(tt.dep, tt.states)
			if got.Delete != tt.want.Delete || got.Policy != tt.want.Policy || !slices.Equal(got.DropRefs, tt.want.DropRefs) {
				t.Errorf("decide = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestStateOf(t *testing.T) {
	now := metav1.Now()
	tests := []struct {
		name  string
		owner *metav1.ObjectMeta
		want  ownerState
	}{
		{"alive", &metav1.ObjectMeta{}, ownerSolid},
		{"alive with the finalizer set ahead", &metav1.ObjectMeta{Finalizers: []string{metav1.FinalizerDeleteDependents}}, ownerSolid},
		{"deleting in the background, held by another finalizer", &metav1.ObjectMeta{DeletionTimestamp: &now, Finalizers: []string{"x"}}, ownerSolid},
		{"orphaning", &metav1.ObjectMeta{DeletionTimestamp: &now, Finalizers: []string{metav1.FinalizerOrphanDependents}}, ownerSolid},
		{"deleting in the foreground", &metav1.ObjectMeta{DeletionTimestamp: &now, Finalizers: []string{"x", metav1.FinalizerDeleteDependents}}, ownerWaiting},
	}
	for _, tt := range tests {
		if got := stateOf(tt.owner); got != tt.want {
			t.Errorf("%s: stateOf = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestBlocks(t *testing.T) {
	dep := &metav1.ObjectMeta{OwnerReferences: []metav1.OwnerReference{
		{UID: "a", BlockOwnerDeletion: ptr.To(true)},
		{UID: "b", BlockOwnerDeletion: ptr.To(false)},
		{UID: "c"},
	}}
	for uid, want := range map[types.UID]bool{"a": true, "b": false, "c": false, "d": false} {
		if got := blocks(dep, uid); got != want {
			t.Errorf("blocks(%q) = %v, want %v", uid, got, want)
		}
	}
}
