package workload

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// expectationTTL bounds how long a reconciliation waits for the cache to
// show its own writes; an event lost for longer than that is re-planned.
const expectationTTL = 30 * time.Second

// expectations remember, per Workload, the writes the cache has not shown
// yet. Planning from a cache that lags one's own creates would create the
// same Instances twice (Kubernetes' controllers keep the same ledger).
type expectations struct {
	mu sync.Mutex
	m  map[types.NamespacedName]*pending
}

type pending struct {
	// uid is the Workload's: a namesake created after a deletion starts
	// a ledger of its own.
	uid     types.UID
	creates sets.Set[string]
	deletes sets.Set[types.UID]
	until   time.Time
}

func newExpectations() *expectations {
	return &expectations{m: map[types.NamespacedName]*pending{}}
}

// expect records writes just made for key.
func (e *expectations) expect(key types.NamespacedName, uid types.UID, created []string, deleted []types.UID, now time.Time) {
	if len(created) == 0 && len(deleted) == 0 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.m[key]
	if p == nil || p.uid != uid {
		p = &pending{uid: uid, creates: sets.New[string](), deletes: sets.New[types.UID]()}
		e.m[key] = p
	}
	p.creates.Insert(created...)
	p.deletes.Insert(deleted...)
	p.until = now.Add(expectationTTL)
}

// satisfied reports whether the snapshot shows every write made for key,
// forgetting those it shows; otherwise how long to wait at most.
func (e *expectations) satisfied(key types.NamespacedName, uid types.UID, insts []*skiffv1alpha1.Instance, now time.Time) (bool, time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.m[key]
	if p == nil || p.uid != uid {
		delete(e.m, key)
		return true, 0
	}
	live := sets.New[types.UID]()
	for _, inst := range insts {
		p.creates.Delete(inst.Name)
		if inst.DeletionTimestamp.IsZero() {
			live.Insert(inst.UID)
		}
	}
	p.deletes = p.deletes.Intersection(live)
	if (p.creates.Len() == 0 && p.deletes.Len() == 0) || now.After(p.until) {
		delete(e.m, key)
		return true, 0
	}
	return false, p.until.Sub(now)
}

// forget drops key's ledger (the Workload is gone).
func (e *expectations) forget(key types.NamespacedName) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.m, key)
}
