package etcdsnapshot

import (
	"context"
	"sync"
	"time"

	"k8s.io/klog/v2"
)

// DefaultRetention is how many scheduled snapshots are kept.
const DefaultRetention = 5

// Scheduler takes a snapshot each time Schedule says, then deletes the
// scheduled snapshots beyond the newest Retention.
type Scheduler struct {
	Store     *Store
	Schedule  Schedule
	Retention int

	mu   sync.Mutex
	last Status
}

// Status is the last scheduled snapshot and the next one.
type Status struct {
	Schedule string    `json:"schedule"`
	Next     time.Time `json:"next,omitzero"`
	Last     string    `json:"last,omitempty"`
	LastAt   time.Time `json:"lastAt,omitzero"`
	Error    string    `json:"error,omitempty"`
	Pruned   []string  `json:"pruned,omitempty"`
}

// Status reports the last scheduled snapshot (for /health).
func (s *Scheduler) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.last
	st.Schedule = s.Schedule.String()
	return st
}

// Run takes the scheduled snapshots until ctx ends; a failed snapshot is
// logged and reported by Status, and the next one is taken as scheduled.
func (s *Scheduler) Run(ctx context.Context) error {
	for {
		now := time.Now()
		next, err := s.Schedule.Next(now)
		if err != nil {
			klog.ErrorS(err, "no scheduled etcd snapshots")
			<-ctx.Done()
			return nil
		}
		s.mu.Lock()
		s.last.Next = next
		s.mu.Unlock()
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		s.RunOnce(ctx)
	}
}

// RunOnce takes one scheduled snapshot and prunes.
func (s *Scheduler) RunOnce(ctx context.Context) {
	start := time.Now()
	info, err := s.Store.Save(ctx, ScheduledName, true)
	st := Status{LastAt: start}
	if err != nil {
		klog.ErrorS(err, "scheduled etcd snapshot failed")
		st.Error = err.Error()
	} else {
		st.Last = info.Name
		klog.InfoS("saved a scheduled etcd snapshot", "path", info.Path, "size", info.Size, "revision", info.Revision, "took", time.Since(start))
		pruned, err := s.Store.Prune(s.Retention)
		st.Pruned = pruned
		if err != nil {
			klog.ErrorS(err, "pruning scheduled etcd snapshots")
			st.Error = "pruning: " + err.Error()
		} else if len(pruned) > 0 {
			klog.InfoS("pruned scheduled etcd snapshots", "deleted", pruned, "retention", s.Retention)
		}
	}
	s.mu.Lock()
	st.Next = s.last.Next
	s.last = st
	s.mu.Unlock()
}
