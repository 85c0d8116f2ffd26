package mcp

import (
	"context"
	"fmt"
	"sync"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// watches feed resource subscriptions: one API watch per caller and URI,
// made as that caller, telling the subscribed sessions
// (notifications/resources/updated) when the object changes. A session
// unsubscribes only its own subscription; a watch stops when its last
// session unsubscribes or closes, or the bridge closes.
type watches struct {
	b      *Bridge
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu sync.Mutex
	// byKey is keyed by caller and URI.
	byKey map[watchKey]*uriWatch
	// watching are the sessions whose end is being waited for.
	watching map[*sdk.ServerSession]bool
}

type watchKey struct{ caller, uri string }

type uriWatch struct {
	sessions map[*sdk.ServerSession]bool
	cancel   context.CancelFunc
}

// notifyEvery coalesces the cluster status' notifications: every object
// change of the cluster would otherwise be one.
const notifyEvery = time.Second

func newWatches(b *Bridge) *watches {
	ctx, cancel := context.WithCancel(context.Background())
	return &watches{b: b, ctx: ctx, cancel: cancel, byKey: map[watchKey]*uriWatch{}, watching: map[*sdk.ServerSession]bool{}}
}

// callerID names the caller of a request for the watch table: its key
// over HTTP, "" for the bridge's own identity.
func callerID(ctx context.Context, extra *sdk.RequestExtra) string {
	key, _ := callerKey(ctx, extra)
	return string(key)
}

// subscribe is the SDK's SubscribeHandler: the caller must be able to
// read the resource; the caller's first subscription to it starts a watch.
func (w *watches) subscribe(ctx context.Context, req *sdk.SubscribeRequest) error {
	ref, err := parseResourceURI(req.Params.URI)
	if err != nil {
		return err
	}
	if err := w.b.checkKind(ref.kind); ref.kind != "Cluster" && err != nil {
		return err
	}
	conn, err := w.b.conns.For(ctx, req.Extra)
	if err != nil {
		return err
	}
	if _, err := w.b.resourceBody(ctx, conn, ref); err != nil {
		return err
	}
	key := watchKey{caller: callerID(ctx, req.Extra), uri: ref.uri}
	w.mu.Lock()
	defer w.mu.Unlock()
	if ss := req.Session; ss != nil && !w.watching[ss] {
		w.watching[ss] = true
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			w.endWith(ss)
		}()
	}
	if uw := w.byKey[key]; uw != nil {
		uw.sessions[req.Session] = true
		return nil
	}
	wctx, cancel := context.WithCancel(w.ctx)
	w.byKey[key] = &uriWatch{sessions: map[*sdk.ServerSession]bool{req.Session: true}, cancel: cancel}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		w.run(wctx, conn, ref)
	}()
	return nil
}

// unsubscribe is the SDK's UnsubscribeHandler: only the session's own
// subscription goes.
func (w *watches) unsubscribe(ctx context.Context, req *sdk.UnsubscribeRequest) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.drop(watchKey{caller: callerID(ctx, req.Extra), uri: req.Params.URI}, req.Session)
	return nil
}

// drop removes session's subscription under key; the caller holds mu.
func (w *watches) drop(key watchKey, session *sdk.ServerSession) {
	uw := w.byKey[key]
	if uw == nil || !uw.sessions[session] {
		return
	}
	delete(uw.sessions, session)
	if len(uw.sessions) == 0 {
		uw.cancel()
		delete(w.byKey, key)
	}
}

// endWith drops a session's subscriptions once it ends (the SDK does not
// unsubscribe a session that goes away).
func (w *watches) endWith(ss *sdk.ServerSession) {
	done := make(chan struct{})
	go func() {
		_ = ss.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-w.ctx.Done():
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.watching, ss)
	for key := range w.byKey {
		w.drop(key, ss)
	}
}

func (w *watches) close() {
	w.cancel()
	w.wg.Wait()
}

// run watches what ref names and notifies on every change, re-watching
// when a watch ends, until ctx ends.
func (w *watches) run(ctx context.Context, conn *Conn, ref resourceRef) {
	changed := make(chan struct{}, 1)
	lists := watchedLists(ref)
	for _, newList := range lists {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			w.watchList(ctx, conn, ref, newList, changed)
		}()
	}
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
		if ref.kind == "Cluster" {
			if wait := notifyEvery - time.Since(last); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
		}
		last = time.Now()
		_ = w.b.server.ResourceUpdated(ctx, &sdk.ResourceUpdatedNotificationParams{URI: ref.uri})
	}
}

// watchedLists are the lists whose changes change ref.
func watchedLists(ref resourceRef) []func() client.ObjectList {
	switch ref.kind {
	case "Workload":
		return []func() client.ObjectList{func() client.ObjectList { return &skiffv1alpha1.WorkloadList{} }}
	case "Node":
		return []func() client.ObjectList{func() client.ObjectList { return &skiffv1alpha1.NodeList{} }}
	}
	return []func() client.ObjectList{
		func() client.ObjectList { return &skiffv1alpha1.NodeList{} },
		func() client.ObjectList { return &skiffv1alpha1.WorkloadList{} },
		func() client.ObjectList { return &skiffv1alpha1.InstanceList{} },
	}
}

func (w *watches) watchList(ctx context.Context, conn *Conn, ref resourceRef, newList func() client.ObjectList, changed chan<- struct{}) {
	var opts []client.ListOption
	if ref.key.Name != "" {
		opts = append(opts, client.MatchingFields{"metadata.name": ref.key.Name})
	}
	if ref.key.Namespace != "" {
		opts = append(opts, client.InNamespace(ref.key.Namespace))
	}
	for first := true; ctx.Err() == nil; first = false {
		if !first {
			// What changed between two watches is not lost.
			select {
			case changed <- struct{}{}:
			default:
			}
		}
		if err := w.watchOnce(ctx, conn, newList, opts, changed); err != nil && ctx.Err() == nil {
			klog.V(2).InfoS("resource subscription: watch ended", "uri", ref.uri, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

// watchOnce lists (for a resource version: no notification for what
// already is) and watches from there until the watch ends.
func (w *watches) watchOnce(ctx context.Context, conn *Conn, newList func() client.ObjectList, opts []client.ListOption, changed chan<- struct{}) error {
	list := newList()
	if err := conn.List(ctx, list, append([]client.ListOption{client.Limit(1)}, opts...)...); err != nil {
		return err
	}
	wi, err := conn.Watch(ctx, newList(), append([]client.ListOption{&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.GetResourceVersion(), AllowWatchBookmarks: true}}}, opts...)...)
	if err != nil {
		return err
	}
	defer wi.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-wi.ResultChan():
			if !ok {
				return nil
			}
			switch ev.Type {
			case watch.Error:
				return fmt.Errorf("watch: %v", ev.Object)
			case watch.Bookmark:
				continue
			}
			select {
			case changed <- struct{}{}:
			default:
			}
		}
	}
}
