package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apiserver/pkg/authentication/user"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/klog/v2"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// Fairness replaces the library's global in-flight limit, under which one
// client's flood made everyone's requests fail with 429. Each identity
// may run a few requests at once (flowSeats); more wait in a queue of its
// own, so a flood from one identity waits behind itself and holds at most
// flowSeats requests' worth of the machine, while everyone else's requests
// run at once. A level's seats bound all of its requests together (the
// memory the library's limit protected); when they are all taken, a freed
// seat goes to the next waiting identity in turn (round robin). Nodes
// (their Leases and status, the heartbeat of the cluster) have a level of
// their own that no other identity can fill. The API server's own
// loopback client waits for nothing. Probes and long-running requests
// (watches, logs) never come here.
//
// Measured (TestFloodLeavesOthersATurn): with 32 seats a level and no cap
// per identity, a light request waited behind the flood's heavy ones
// (p50 0.25 s); with a cap per identity it runs beside them.
const (
	// flowSeats is how many requests one identity runs at once: enough
	// for a client's parallel writes to overlap etcd's fsyncs.
	flowSeats = 32
	// levelSeats bound a level's running requests, as the library's 400
	// and 200 did.
	levelSeats = 400
	// queuePerFlow is how many requests of one identity may wait; more
	// are refused with 429 at once.
	queuePerFlow = 128
	// maxWait is how long a request waits for a seat before 429 (as APF's
	// request timeout / 4).
	maxWait = 15 * time.Second
)

// errNoSeat: the identity's queue is full, or the wait ran out.
var errNoSeat = errors.New("too many requests from this identity; try again later")

// fairQueue is one level's seats and its flows, one per identity.
type fairQueue struct {
	seats, perFlow, queue int
	maxWait               time.Duration

	mu    sync.Mutex
	busy  int
	flows map[string]*flow
	ring  []*flow // flows with waiters, served in turn
	next  int
}

// flow is one identity's running count and waiting requests, oldest
// first. It exists while it has either.
type flow struct {
	name    string
	running int
	waiting []chan struct{}
}

func newFairQueue(seats, perFlow, queue int, maxWait time.Duration) *fairQueue {
	return &fairQueue{seats: seats, perFlow: perFlow, queue: queue, maxWait: maxWait, flows: map[string]*flow{}}
}

// acquire takes a seat for a request of flow name, waiting its turn; the
// caller must call release(name) when the request is done.
func (q *fairQueue) acquire(ctx context.Context, name string) error {
	q.mu.Lock()
	f := q.flows[name]
	if f == nil {
		f = &flow{name: name}
		q.flows[name] = f
	}
	// A free seat with flows waiting means they wait for their own cap:
	// taking it is no one's turn.
	if q.busy < q.seats && f.running < q.perFlow && len(f.waiting) == 0 {
		q.busy++
		f.running++
		q.mu.Unlock()
		return nil
	}
	if len(f.waiting) >= q.queue {
		q.mu.Unlock()
		return errNoSeat
	}
	granted := make(chan struct{})
	f.waiting = append(f.waiting, granted)
	if len(f.waiting) == 1 {
		q.ring = append(q.ring, f)
	}
	q.mu.Unlock()

	timer := time.NewTimer(q.maxWait)
	defer timer.Stop()
	select {
	case <-granted:
		return nil
	case <-ctx.Done():
	case <-timer.C:
	}
	q.mu.Lock()
	select {
	case <-granted: // the seat came as the wait ended: give it back
		q.mu.Unlock()
		q.release(name)
	default:
		q.leave(f, granted)
		q.mu.Unlock()
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errNoSeat
}

// release frees a seat of flow name and hands seats to waiting flows in
// turn.
func (q *fairQueue) release(name string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	f := q.flows[name]
	f.running--
	q.busy--
	q.dispatch()
	q.forgetIdle(f)
}

// dispatch grants free seats to the oldest request of each waiting flow
// under its cap, in turn. q.mu is held.
func (q *fairQueue) dispatch() {
	for q.busy < q.seats && len(q.ring) > 0 {
		picked := -1
		for k := range len(q.ring) {
			i := (q.next + k) % len(q.ring)
			if q.ring[i].running < q.perFlow {
				picked = i
				break
			}
		}
		if picked < 0 {
			return // every waiting flow is at its cap
		}
		f := q.ring[picked]
		granted := f.waiting[0]
		f.waiting = f.waiting[1:]
		f.running++
		q.busy++
		q.next = picked + 1
		if len(f.waiting) == 0 {
			q.dropFromRing(picked)
		}
		close(granted)
	}
}

// leave takes a request that gave up out of its flow. q.mu is held.
func (q *fairQueue) leave(f *flow, granted chan struct{}) {
	for i, ch := range f.waiting {
		if ch == granted {
			f.waiting = append(f.waiting[:i], f.waiting[i+1:]...)
			break
		}
	}
	if len(f.waiting) == 0 {
		for i, g := range q.ring {
			if g == f {
				q.dropFromRing(i)
				break
			}
		}
	}
	q.forgetIdle(f)
}

// forgetIdle drops a flow that runs and waits for nothing. q.mu is held.
func (q *fairQueue) forgetIdle(f *flow) {
	if f.running == 0 && len(f.waiting) == 0 {
		delete(q.flows, f.name)
	}
}

func (q *fairQueue) dropFromRing(i int) {
	q.ring = append(q.ring[:i], q.ring[i+1:]...)
	if q.next > i {
		q.next--
	}
}

// fairness sends each request to its level's queue.
type fairness struct {
	nodes, workload *fairQueue
}

func newFairness() *fairness {
	return &fairness{
		nodes:    newFairQueue(levelSeats, flowSeats, queuePerFlow, maxWait),
		workload: newFairQueue(levelSeats, flowSeats, queuePerFlow, maxWait),
	}
}

// withFairness wraps the authorized handler: the user is known here.
func withFairness(next http.Handler, f *fairness) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		u, ok := genericapirequest.UserFrom(ctx)
		info, hasInfo := genericapirequest.RequestInfoFrom(ctx)
		if !ok || u.GetName() == user.APIServerUser || (hasInfo && longRunning(r, info)) {
			next.ServeHTTP(w, r)
			return
		}
		q, level := f.workload, "workload"
		if strings.HasPrefix(u.GetName(), skiffv1alpha1.NodeUserPrefix) {
			q, level = f.nodes, "nodes"
		}
		if err := q.acquire(ctx, u.GetName()); err != nil {
			if ctx.Err() != nil {
				return // the client went away
			}
			klog.V(2).InfoS("request refused: no seat", "user", u.GetName(), "level", level, "err", err)
			status := apierrors.NewTooManyRequests(fmt.Sprintf("%s (%s)", errNoSeat, u.GetName()), 1).Status()
			status.Kind, status.APIVersion = "Status", "v1"
			w.Header().Set("Retry-After", "1")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			_ = json.NewEncoder(w).Encode(status)
			return
		}
		defer q.release(u.GetName())
		next.ServeHTTP(w, r)
	})
}
