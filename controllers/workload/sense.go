package workload

import (
	"time"

	"context"
	"fmt"
	"sort"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// ownerIndex indexes Instances by the UID of their controlling owner.
const ownerIndex = "skiff.dev/controller-uid"

// Snapshot is SENSE's reading of the cache: one Workload, the Instances
// it owns and the Nodes they may run on.
type Snapshot struct {
	Workload  *skiffv1alpha1.Workload
	Instances []*skiffv1alpha1.Instance
	Nodes     []*skiffv1alpha1.Node
	// Now is when the snapshot is judged (zero: when it is compared).
	Now time.Time
}

// Sensor reads snapshots.
type Sensor struct {
	// Reader is the manager's cache, or a live client for `skiff plan`.
	Reader client.Reader
	// Owned, when set, gives the Instances whose controlling owner has
	// the UID, as the cache holds them (see ownerIndexFunc): read in place,
	// never copied, so a reconciliation per Instance change costs no
	// allocation per Instance. Without it, Instances are listed from
	// Reader.
	Owned func(uid types.UID) ([]*skiffv1alpha1.Instance, error)
	// WithNodes also reads the Nodes, for placements.
	WithNodes bool
}

// ownerIndexFunc indexes Instances in an informer by the UID of their
// controlling Workload, for Sensor.Owned.
func ownerIndexFunc(obj any) ([]string, error) {
	o, ok := obj.(client.Object)
	if !ok {
		return nil, nil
	}
	return controllerUID(o), nil
}

// Sense reads the snapshot for w. Instances are the ones w controls by
// ownerReference (matched by UID, so a namesake's are not counted), in name
// order. The snapshot is read, never written: its Instances may be the
// cache's own.
func (s Sensor) Sense(ctx context.Context, w *skiffv1alpha1.Workload) (*Snapshot, error) {
	snap := &Snapshot{Workload: w}
	if s.Owned != nil {
		owned, err := s.Owned(w.UID)
		if err != nil {
			return nil, fmt.Errorf("workload %q in %q: listing instances: %w", w.Name, w.Namespace, err)
		}
		for _, inst := range owned {
			if inst.Namespace == w.Namespace {
				snap.Instances = append(snap.Instances, inst)
			}
		}
	} else {
		var list skiffv1alpha1.InstanceList
		if err := s.Reader.List(ctx, &list, client.InNamespace(w.Namespace)); err != nil {
			return nil, fmt.Errorf("workload %q in %q: listing instances: %w", w.Name, w.Namespace, err)
		}
		for i := range list.Items {
			if uids := controllerUID(&list.Items[i]); len(uids) == 1 && uids[0] == string(w.UID) {
				snap.Instances = append(snap.Instances, &list.Items[i])
			}
		}
	}
	sort.Slice(snap.Instances, func(i, j int) bool { return snap.Instances[i].Name < snap.Instances[j].Name })
	if s.WithNodes {
		var nodes skiffv1alpha1.NodeList
		if err := s.Reader.List(ctx, &nodes); err != nil {
			return nil, fmt.Errorf("workload %q in %q: listing nodes: %w", w.Name, w.Namespace, err)
		}
		for i := range nodes.Items {
			snap.Nodes = append(snap.Nodes, &nodes.Items[i])
		}
	}
	return snap, nil
}

// controllerUID is the UID of o's controlling Workload, if it has one.
func controllerUID(o client.Object) []string {
	for _, ref := range o.GetOwnerReferences() {
		if ref.Controller != nil && *ref.Controller && ref.Kind == "Workload" &&
			ref.APIVersion == skiffv1alpha1.SchemeGroupVersion.String() {
			return []string{string(ref.UID)}
		}
	}
	return nil
}
