package nodeagent

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/nodeagent/runtime"
)

// fence stops this node's Instances when the agent has reached neither
// the API server nor any gossip peer for `after`: the control plane is
// about to declare the node dead and replace them, and without this the
// copies would run side by side until the partition heals. Once the API
// server answers again, the fenced Instances are marked Failed/NodeLost
// (the workload controller replaces those not replaced yet) and the fence
// lifts. A Runnable of the agent's manager.
type fence struct {
	after time.Duration
	node  string
	rt    runtime.Runtime
	// lastPeer is when a gossip peer last answered.
	lastPeer func() time.Time
	// probe asks the API server something cheap (the node's own Lease).
	probe func(ctx context.Context) error
	// instances reads (cache) and writes (status) this node's Instances.
	instances client.Client
	metrics   *metrics

	mu        sync.Mutex
	lastAPI   time.Time // the API server last answered
	probeOK   bool      // the last probe's outcome
	probing   bool
	fencedAt  time.Time // zero while not fenced
	fencedIDs map[types.UID]types.NamespacedName
}

// fenceTick is how often the fence looks.
const fenceTick = 250 * time.Millisecond

// Contacted records that the API server answered (a Lease renewal).
func (f *fence) Contacted() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastAPI, f.probeOK = time.Now(), true
}

// Fenced reports whether the fence is up: the Instance reconciler starts
// nothing meanwhile.
func (f *fence) Fenced() bool {
	if f == nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.fencedAt.IsZero()
}

func (f *fence) Start(ctx context.Context) error {
	f.Contacted() // the agent just joined through the API server
	started := time.Now()
	tick := time.NewTicker(fenceTick)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		now := time.Now()
		peer := f.lastPeer()
		if peer.IsZero() {
			peer = started // never reached a peer yet: count from the start
		}
		quiet := now.Sub(peer)
		f.mu.Lock()
		lastAPI, probeOK, fenced := f.lastAPI, f.probeOK, !f.fencedAt.IsZero()
		f.mu.Unlock()
		if fenced && probeOK && lastAPI.After(f.fencedAt) {
			f.lift(ctx)
			continue
		}
		// Gossip went quiet: is the API server there? (Ask once a second.)
		if quiet > f.after/2 && now.Sub(lastAPI) > time.Second {
			f.probeAsync(ctx)
		}
		if !fenced && quiet > f.after && now.Sub(lastAPI) > f.after && !probeOK {
			f.raise(ctx, quiet, now.Sub(lastAPI))
		}
	}
}

// probeAsync asks the API server once, unless a probe is in flight.
func (f *fence) probeAsync(ctx context.Context) {
	f.mu.Lock()
	if f.probing {
		f.mu.Unlock()
		return
	}
	f.probing = true
	f.mu.Unlock()
	go func() {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		err := f.probe(pctx)
		f.mu.Lock()
		defer f.mu.Unlock()
		f.probing = false
		if err == nil {
			f.lastAPI, f.probeOK = time.Now(), true
		} else {
			f.probeOK = false
		}
	}()
}

// raise kills every container of this node's Instances at once.
func (f *fence) raise(ctx context.Context, quiet, apiQuiet time.Duration) {
	var list skiffv1alpha1.InstanceList
	if err := f.instances.List(ctx, &list); err != nil {
		klog.ErrorS(err, "fence: list instances")
		return
	}
	ids := map[types.UID]types.NamespacedName{}
	for i := range list.Items {
		inst := &list.Items[i]
		if inst.Spec.NodeName == f.node && !inst.Finished() && inst.DeletionTimestamp.IsZero() {
			ids[inst.UID] = types.NamespacedName{Namespace: inst.Namespace, Name: inst.Name}
		}
	}
	f.mu.Lock()
	f.fencedAt, f.fencedIDs = time.Now(), ids
	f.mu.Unlock()
	klog.InfoS("fencing: no gossip peer and no API server answered; stopping every Instance before the control plane replaces them",
		"node", f.node, "peersQuietFor", quiet.Round(time.Millisecond), "apiQuietFor", apiQuiet.Round(time.Millisecond), "instances", len(ids))
	statuses, err := f.rt.List(ctx)
	if err != nil {
		klog.ErrorS(err, "fence: list containers")
		return
	}
	for _, st := range statuses {
		if _, ours := ids[types.UID(st.Labels[labelInstanceUID])]; ours && st.State == runtime.Running {
			if err := f.rt.Kill(ctx, st.ID, syscall.SIGKILL); err != nil {
				klog.ErrorS(err, "fence: kill", "container", st.ID)
			}
		}
	}
	f.metrics.fenced.Inc()
}

// lift marks the fenced Instances Failed/NodeLost, then lets the
// reconciler go on (it stops and cleans up what is marked).
func (f *fence) lift(ctx context.Context) {
	f.mu.Lock()
	ids, at := f.fencedIDs, f.fencedAt
	f.mu.Unlock()
	msg := fmt.Sprintf("the agent of node %q fenced it at %s: it reached neither the API server nor any gossip peer for %s",
		f.node, at.UTC().Format(time.RFC3339), f.after)
	for uid, key := range ids {
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			var inst skiffv1alpha1.Instance
			if err := f.instances.Get(ctx, key, &inst); err != nil {
				return client.IgnoreNotFound(err)
			}
			if inst.UID != uid || inst.Finished() {
				return nil // replaced by another of that name, or already ended (by the control plane)
			}
			inst.MarkNodeLost(msg)
			return f.instances.Status().Update(ctx, &inst)
		})
		if err != nil {
			klog.ErrorS(err, "fence: mark lost", "instance", key)
			return // try again at the next tick
		}
	}
	f.mu.Lock()
	f.fencedAt, f.fencedIDs = time.Time{}, nil
	f.mu.Unlock()
	klog.InfoS("fence lifted: the API server answers again", "node", f.node, "markedLost", len(ids))
}
