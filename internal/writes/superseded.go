// Package writes helps a controller that writes objects it reads from an
// informer's cache: it tells a cached object its own writes replaced
// (Superseded), and lets writers that never read what a write returns take
// back only the written object's metadata (MetadataReplies).
package writes

import (
	"slices"
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Superseded remembers, per object, the resource versions a controller's
// own writes replaced. The cache shows a write only when its watch event
// arrives; a reconcile that reads a version already replaced could only
// write from it and conflict (a wasted request and a retry). It waits for
// the write's event instead. The zero value is ready to use.
type Superseded struct {
	mu sync.Mutex
	m  map[types.NamespacedName][]string
}

// Wrote records that a write of obj replaced version before.
func (s *Superseded) Wrote(obj client.Object, before string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[types.NamespacedName][]string{}
	}
	key := client.ObjectKeyFromObject(obj)
	s.m[key] = append(s.m[key], before)
}

// Write runs write, which writes obj (updating it in place, as
// controller-runtime's clients do), and on success records the version it
// replaced.
func (s *Superseded) Write(obj client.Object, write func() error) error {
	before := obj.GetResourceVersion()
	if err := write(); err != nil {
		return err
	}
	s.Wrote(obj, before)
	return nil
}

// Stale reports whether obj is a version the writer's own writes replaced;
// once the cache shows a later one, the record is dropped.
func (s *Superseded) Stale(obj client.Object) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := client.ObjectKeyFromObject(obj)
	versions, ok := s.m[key]
	if !ok {
		return false
	}
	if slices.Contains(versions, obj.GetResourceVersion()) {
		return true
	}
	delete(s.m, key)
	return false
}

// Forget drops what is known of an object that is gone.
func (s *Superseded) Forget(key types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
}
