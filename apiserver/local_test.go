package apiserver

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/watch"
	toolscache "k8s.io/client-go/tools/cache"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// TestLocalListsAndWatchesCopies: the in-process reader lists and watches
// what the API serves, each reader holding its own copy of the cache's
// objects, and a SharedIndexInformer runs on it.
func TestLocalListsAndWatchesCopies(t *testing.T) {
	ts := startTestServer(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	local := ts.srv.Local()
	if _, ok := local.ListerWatcher(&unstructured.Unstructured{}); ok {
		t.Fatal("an unstructured object is not one of the stored types")
	}
	lw, ok := local.ListerWatcher(&skiffv1alpha1.Instance{})
	if !ok {
		t.Fatal("Instances are stored here, yet no ListerWatcher")
	}
	lwc := lw.(toolscache.ListerWatcherWithContext)

	first := newInstance("first")
	if err := ts.client.Create(ctx, first); err != nil {
		t.Fatal(err)
	}
	obj, err := lwc.ListWithContext(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	list := obj.(*skiffv1alpha1.InstanceList)
	if len(list.Items) != 1 || list.Items[0].Name != "first" || list.ResourceVersion == "" {
		t.Fatalf("list: %d items, rv %q; want first alone, with a resource version", len(list.Items), list.ResourceVersion)
	}
	// The reader owns its copy: changing it changes no later read.
	list.Items[0].Labels["app"] = "changed"
	again, err := lwc.ListWithContext(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := again.(*skiffv1alpha1.InstanceList).Items[0].Labels["app"]; got != "first" {
		t.Fatalf("a reader's change reached the cache: label app = %q", got)
	}

	w, err := lwc.WatchWithContext(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion, LabelSelector: "app=second"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if err := ts.client.Create(ctx, newInstance("second")); err != nil {
		t.Fatal(err)
	}
	if err := ts.client.Delete(ctx, first); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-w.ResultChan():
		inst, ok := ev.Object.(*skiffv1alpha1.Instance)
		if ev.Type != watch.Added || !ok || inst.Name != "second" {
			t.Fatalf("first event %s %T; want the second Instance Added (the selector keeps the first out)", ev.Type, ev.Object)
		}
	case <-ctx.Done():
		t.Fatal("no watch event")
	}

	// A metadata-only reader, as the garbage collector's.
	mlw, ok := local.ListerWatcher(&metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "skiff.dev/v1alpha1", Kind: "Instance"}})
	if !ok {
		t.Fatal("no metadata ListerWatcher for Instances")
	}
	if _, ok := local.ListerWatcher(&metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"}}); ok {
		t.Fatal("a ListerWatcher for a kind not stored here")
	}
	mobj, err := mlw.(toolscache.ListerWatcherWithContext).ListWithContext(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mlist := mobj.(*metav1.PartialObjectMetadataList)
	if len(mlist.Items) != 1 || mlist.Items[0].Name != "second" || mlist.Items[0].Kind != "Instance" || mlist.ResourceVersion == "" {
		t.Fatalf("metadata list: %+v; want second alone, as an Instance", mlist)
	}
	mw, err := mlw.(toolscache.ListerWatcherWithContext).WatchWithContext(ctx, metav1.ListOptions{ResourceVersion: mlist.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer mw.Stop()

	// An informer on it, as the controllers run one.
	inf := toolscache.NewSharedIndexInformer(lw, &skiffv1alpha1.Instance{}, 0, toolscache.Indexers{})
	go inf.RunWithContext(ctx)
	if !toolscache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatal("informer never synced")
	}
	if err := ts.client.Create(ctx, newInstance("third")); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-mw.ResultChan():
		m, ok := ev.Object.(*metav1.PartialObjectMetadata)
		if ev.Type != watch.Added || !ok || m.Name != "third" || m.Kind != "Instance" || m.Labels["app"] != "third" ||
			m.UID == "" || m.ResourceVersion == "" || m.CreationTimestamp.IsZero() || len(m.ManagedFields) == 0 {
			t.Fatalf("metadata event %s %#v; want third Added, as an Instance's whole metadata", ev.Type, ev.Object)
		}
		// Its own copy too.
		m.Labels["app"], m.ManagedFields[0].Manager = "changed", "changed"
		got, err := lwc.ListWithContext(ctx, metav1.ListOptions{LabelSelector: "app=third"})
		if err != nil {
			t.Fatal(err)
		}
		if items := got.(*skiffv1alpha1.InstanceList).Items; len(items) != 1 || items[0].ManagedFields[0].Manager == "changed" {
			t.Fatalf("a metadata reader's change reached the cache: %+v", items)
		}
	case <-ctx.Done():
		t.Fatal("no metadata watch event")
	}
	eventually(t, 30*time.Second, "the informer holds second and third alone", func() bool {
		keys := inf.GetStore().ListKeys()
		_, second, _ := inf.GetStore().GetByKey("default/second")
		_, third, _ := inf.GetStore().GetByKey("default/third")
		return len(keys) == 2 && second && third
	})
}
