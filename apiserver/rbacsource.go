package apiserver

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"

	"skiff.dev/skiff/apiserver/rbac"
)

// mirror keeps the objects of one store in memory, listed and then
// watched, for the parts that decide on every request (authorization).
// Readers get slices that are replaced, never changed, on each event.
type mirror[T runtime.Object] struct {
	store *REST
	// changed is called after each change, outside the lock.
	changed func()

	mu     sync.RWMutex
	byKey  map[string]T   // namespace/name
	byNS   map[string][]T // namespace -> objects, rebuilt per change
	synced atomic.Bool
}

func newMirror[T runtime.Object](store *REST, changed func()) *mirror[T] {
	return &mirror[T]{store: store, changed: changed, byKey: map[string]T{}, byNS: map[string][]T{}}
}

func (m *mirror[T]) get(namespace, name string) (T, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	o, ok := m.byKey[namespace+"/"+name]
	return o, ok
}

func (m *mirror[T]) in(namespace string) []T {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.byNS[namespace]
}

// Run lists and watches until ctx ends, re-listing when a watch ends.
func (m *mirror[T]) Run(ctx context.Context) {
	relist(ctx, "mirror of "+m.store.kind.Plural, m.syncOnce)
}

func (m *mirror[T]) syncOnce(ctx context.Context) error {
	ctx = genericapirequest.WithNamespace(ctx, "")
	list, err := m.store.List(ctx, &metainternalversion.ListOptions{})
	if err != nil {
		return fmt.Errorf("list %s: %w", m.store.kind.Plural, err)
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return fmt.Errorf("list %s: %w", m.store.kind.Plural, err)
	}
	fresh := map[string]T{}
	for _, item := range items {
		if o, ok := item.(T); ok {
			fresh[key(o)] = o
		}
	}
	m.replace(fresh)
	m.synced.Store(true)
	rv, err := meta.NewAccessor().ResourceVersion(list)
	if err != nil {
		return fmt.Errorf("list %s: %w", m.store.kind.Plural, err)
	}
	w, err := m.store.Watch(ctx, &metainternalversion.ListOptions{ResourceVersion: rv, Watch: true})
	if err != nil {
		return fmt.Errorf("watch %s: %w", m.store.kind.Plural, err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.ResultChan():
			if !ok {
				return nil
			}
			obj := ev.Object
			if c, ok := obj.(runtime.CacheableObject); ok {
				obj = c.GetObject()
			}
			o, ok := obj.(T)
			if !ok {
				return fmt.Errorf("watch %s: unexpected %s event with %T", m.store.kind.Plural, ev.Type, ev.Object)
			}
			m.apply(o, ev.Type == watch.Deleted)
		}
	}
}

func key(o runtime.Object) string {
	a, _ := meta.Accessor(o)
	return a.GetNamespace() + "/" + a.GetName()
}

func namespaceOf(o runtime.Object) string {
	a, _ := meta.Accessor(o)
	return a.GetNamespace()
}

func (m *mirror[T]) replace(fresh map[string]T) {
	m.mu.Lock()
	m.byKey = fresh
	m.byNS = map[string][]T{}
	for _, o := range fresh {
		ns := namespaceOf(o)
		m.byNS[ns] = append(m.byNS[ns], o)
	}
	m.mu.Unlock()
	m.notify()
}

func (m *mirror[T]) apply(o T, deleted bool) {
	ns := namespaceOf(o)
	m.mu.Lock()
	if deleted {
		delete(m.byKey, key(o))
	} else {
		m.byKey[key(o)] = o
	}
	var objs []T
	for _, x := range m.byKey {
		if namespaceOf(x) == ns {
			objs = append(objs, x)
		}
	}
	m.byNS[ns] = objs
	m.mu.Unlock()
	m.notify()
}

func (m *mirror[T]) notify() {
	if m.changed != nil {
		m.changed()
	}
}

// rbacSource is rbac.Source over mirrors of the four RBAC stores. It also
// knows which users some binding names (known): a personal key is
// authenticated only when trusted by a binding (restrictive preset).
type rbacSource struct {
	roles               *mirror[*rbacv1.Role]
	clusterRoles        *mirror[*rbacv1.ClusterRole]
	roleBindings        *mirror[*rbacv1.RoleBinding]
	clusterRoleBindings *mirror[*rbacv1.ClusterRoleBinding]

	// users is the set of bound user names, rebuilt (under rebuild) after
	// a binding changes.
	users   atomic.Pointer[map[string]bool]
	dirty   atomic.Bool
	rebuild sync.Mutex
}

var _ rbac.Source = (*rbacSource)(nil)

// newRBACSource is empty until attach gives it the stores and Run fills it.
func newRBACSource() *rbacSource {
	s := &rbacSource{}
	bindingsChanged := func() { s.dirty.Store(true) }
	s.roles = newMirror[*rbacv1.Role](nil, nil)
	s.clusterRoles = newMirror[*rbacv1.ClusterRole](nil, nil)
	s.roleBindings = newMirror[*rbacv1.RoleBinding](nil, bindingsChanged)
	s.clusterRoleBindings = newMirror[*rbacv1.ClusterRoleBinding](nil, bindingsChanged)
	s.dirty.Store(true)
	return s
}

// attach gives the mirrors their stores; call it before Run.
func (s *rbacSource) attach(stores *installed) {
	s.roles.store = stores.store(rolesResource)
	s.clusterRoles.store = stores.store(clusterRolesResource)
	s.roleBindings.store = stores.store(roleBindingsResource)
	s.clusterRoleBindings.store = stores.store(clusterRoleBindingsResource)
}

// Run runs the mirrors until ctx ends.
func (s *rbacSource) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { s.roles.Run(ctx) })
	wg.Go(func() { s.clusterRoles.Run(ctx) })
	wg.Go(func() { s.roleBindings.Run(ctx) })
	wg.Go(func() { s.clusterRoleBindings.Run(ctx) })
	wg.Wait()
}

// synced reports whether every mirror has listed once.
func (s *rbacSource) synced() bool {
	return s.roles.synced.Load() && s.clusterRoles.synced.Load() && s.roleBindings.synced.Load() && s.clusterRoleBindings.synced.Load()
}

func (s *rbacSource) GetClusterRole(name string) (*rbacv1.ClusterRole, bool) {
	return s.clusterRoles.get("", name)
}

func (s *rbacSource) GetRole(namespace, name string) (*rbacv1.Role, bool) {
	return s.roles.get(namespace, name)
}

func (s *rbacSource) ClusterRoleBindings() []*rbacv1.ClusterRoleBinding {
	return s.clusterRoleBindings.in("")
}

func (s *rbacSource) RoleBindings(namespace string) []*rbacv1.RoleBinding {
	return s.roleBindings.in(namespace)
}

// known reports whether a binding names user name as a subject.
func (s *rbacSource) known(name string) bool {
	if s.dirty.Load() {
		s.rebuildUsers()
	}
	users := s.users.Load()
	return users != nil && (*users)[name]
}

// rebuildUsers remakes the set of bound users. One rebuild runs at a time,
// so that an older set never replaces a newer one; a change during a
// rebuild marks it dirty again for the next.
func (s *rbacSource) rebuildUsers() {
	s.rebuild.Lock()
	defer s.rebuild.Unlock()
	if s.dirty.Swap(false) {
		users := map[string]bool{}
		add := func(subjects []rbacv1.Subject) {
			for _, sub := range subjects {
				if sub.Kind == rbacv1.UserKind {
					users[sub.Name] = true
				}
			}
		}
		for _, b := range s.clusterRoleBindings.in("") {
			add(b.Subjects)
		}
		s.roleBindings.mu.RLock()
		for _, b := range s.roleBindings.byKey {
			add(b.Subjects)
		}
		s.roleBindings.mu.RUnlock()
		s.users.Store(&users)
	}
}
