package apiserver

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/component-base/metrics/legacyregistry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// TestInstanceWatchesFollowTheirNode: a node agent's watch
// (spec.nodeName=NODE), which the watch cache sends only the events of
// Instances on that node before or after a change, is sent its own
// Instances' whole lives, from the bind (ADDED) through a status write
// to the delete, and nothing of another node's or of unbound ones.
func TestInstanceWatchesFollowTheirNode(t *testing.T) {
	ts := startTestServer(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	wc, err := client.NewWithWatch(ts.cfg, client.Options{Scheme: ts.scheme})
	if err != nil {
		t.Fatal(err)
	}
	nodes := []string{"node-a", "node-b"}
	watches := map[string]watch.Interface{}
	for _, n := range nodes {
		w, err := wc.Watch(ctx, &skiffv1alpha1.InstanceList{}, client.InNamespace("default"), client.MatchingFields{"spec.nodeName": n})
		if err != nil {
			t.Fatalf("watch %s: %v", n, err)
		}
		defer w.Stop()
		watches[n] = w
	}

	// Each node's Instance lives one after the other; one left unbound;
	// then a last Instance on each node, which ends what each watch reads.
	unbound := newInstance("unbound")
	if err := ts.client.Create(ctx, unbound); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		inst := newInstance("on-" + n)
		bindTestInstance(ctx, t, ts, inst, n)
		inst.Status.Phase = skiffv1alpha1.InstanceRunning
		if err := ts.client.Status().Update(ctx, inst); err != nil {
			t.Fatalf("status of %s: %v", inst.Name, err)
		}
		// The delete waits on the node's finalizer, which the agent
		// removes once the containers are gone.
		if err := ts.client.Delete(ctx, inst); err != nil {
			t.Fatalf("delete %s: %v", inst.Name, err)
		}
		if err := ts.client.Get(ctx, client.ObjectKeyFromObject(inst), inst); err != nil {
			t.Fatal(err)
		}
		inst.Finalizers = nil
		if err := ts.client.Update(ctx, inst); err != nil {
			t.Fatalf("finalizers of %s: %v", inst.Name, err)
		}
	}
	for _, n := range nodes {
		bindTestInstance(ctx, t, ts, newInstance("last-"+n), n)
	}

	for _, n := range nodes {
		var got []string
		for last := false; !last; {
			select {
			case e, ok := <-watches[n].ResultChan():
				if !ok {
					t.Fatalf("watch of %s closed after %v", n, got)
				}
				inst, isInstance := e.Object.(*skiffv1alpha1.Instance)
				if !isInstance {
					t.Fatalf("watch of %s: %s %T", n, e.Type, e.Object)
				}
				what := fmt.Sprintf("%s %s %s", e.Type, inst.Name, inst.Status.Phase)
				if inst.DeletionTimestamp != nil {
					what += " deleting"
				}
				got = append(got, what)
				last = inst.Name == "last-"+n
			case <-ctx.Done():
				t.Fatalf("watch of %s: only %v", n, got)
			}
		}
		want := []string{
			"ADDED on-" + n + " Pending", "MODIFIED on-" + n + " Running",
			"MODIFIED on-" + n + " Running deleting", "DELETED on-" + n + " Running deleting",
			"ADDED last-" + n + " Pending",
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("watch of %s got\n  %v\nwant\n  %v", n, got, want)
		}
	}
}

// TestInstanceListsOfANodeUseTheIndex: listing one node's Instances
// (what an agent does when it starts) reads only that node's Instances
// from the watch cache, through its spec.nodeName index, rather than
// every Instance there is.
func TestInstanceListsOfANodeUseTheIndex(t *testing.T) {
	ts := startTestServer(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 10 {
		node := "node-b"
		if i < 3 {
			node = "node-a"
		}
		bindTestInstance(ctx, t, ts, newInstance(fmt.Sprintf("inst-%d", i)), node)
	}
	const index = "f:spec.nodeName"
	// ResourceVersion 0: from the watch cache, as an informer's first
	// list; asked again until the cache has seen the last bind.
	for {
		before := listFetched(t, index)
		var list skiffv1alpha1.InstanceList
		if err := ts.client.List(ctx, &list, client.InNamespace("default"), client.MatchingFields{"spec.nodeName": "node-a"},
			&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: "0"}}); err != nil {
			t.Fatal(err)
		}
		if fetched := listFetched(t, index) - before; fetched != float64(len(list.Items)) {
			t.Fatalf("the list read %v Instances through the index %s, want the %d on node-a it returned", fetched, index, len(list.Items))
		}
		if len(list.Items) == 3 {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("listed %d Instances on node-a, want 3", len(list.Items))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// listFetched is how many Instances lists have read from the watch cache
// through index (apiserver_storage_list_fetched_objects_total).
func listFetched(t *testing.T, index string) float64 {
	t.Helper()
	return counterSum(t, legacyregistry.DefaultGatherer, "apiserver_storage_list_fetched_objects_total",
		map[string]string{"resource": "instances", "storage": "watchcache", "index": index})
}

// counterSum sums the counter name over the series of g that have every
// label of labels.
func counterSum(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			found := 0
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v == l.GetValue() {
					found++
				}
			}
			if found == len(labels) {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// TestInstanceStoreIsIndexedByNode: the Instance kind gives the watch
// cache its trigger and index on spec.nodeName, with an Instance's node
// as the value, and every selection it makes names the field, which is
// what lets a watch of one node be sent that node's events alone (the
// watch test above passes with or without it; this one does not).
func TestInstanceStoreIsIndexedByNode(t *testing.T) {
	k := instanceKind()
	opts := k.storeOptions(nil)
	trigger, ok := opts.TriggerFunc["spec.nodeName"]
	if !ok || len(opts.TriggerFunc) != 1 {
		t.Fatalf("the Instance store's triggers are %v, want spec.nodeName alone", opts.TriggerFunc)
	}
	inst := newInstance("bound")
	inst.Spec.NodeName = "node-a"
	if got := trigger(inst); got != "node-a" {
		t.Errorf("the trigger of an Instance on node-a is %q", got)
	}
	index, ok := (*opts.Indexers)["f:spec.nodeName"]
	if !ok {
		t.Fatalf("the Instance store's indexes are %v, want f:spec.nodeName", *opts.Indexers)
	}
	if got, err := index(inst); err != nil || len(got) != 1 || got[0] != "node-a" {
		t.Errorf("the index of an Instance on node-a is %v, %v", got, err)
	}
	p := k.matcher(labels.Everything(), fields.OneTermEqualSelector("spec.nodeName", "node-a"))
	if len(p.IndexFields) != 1 || p.IndexFields[0] != "spec.nodeName" {
		t.Errorf("a selection of Instances names the index fields %v, want spec.nodeName", p.IndexFields)
	}
	if opts := workloadKind().storeOptions(nil); opts.TriggerFunc != nil || opts.Indexers != nil {
		t.Errorf("Workloads, which no agent watches by node, have a trigger or an index")
	}
}

// bindTestInstance creates inst and binds it to node, as the scheduler does.
func bindTestInstance(ctx context.Context, t *testing.T, ts *testServer, inst *skiffv1alpha1.Instance, node string) {
	t.Helper()
	if err := ts.client.Create(ctx, inst); err != nil {
		t.Fatalf("create %s: %v", inst.Name, err)
	}
	if err := ts.client.SubResource("binding").Create(ctx, inst, &skiffv1alpha1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: inst.Name, UID: inst.UID}, NodeName: node,
	}); err != nil {
		t.Fatalf("bind %s: %v", inst.Name, err)
	}
	if err := ts.client.Get(ctx, client.ObjectKeyFromObject(inst), inst); err != nil {
		t.Fatal(err)
	}
}
