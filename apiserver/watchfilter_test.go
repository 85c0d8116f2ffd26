package apiserver

import (
	"strconv"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// TestFilterWatchEndsWhenStopped: a filtered watch whose reader stops
// reading and calls Stop ends (its channel closes) though the upstream
// still holds events, and passes the events f keeps, changed, before.
func TestFilterWatchEndsWhenStopped(t *testing.T) {
	upstream := make(chan watch.Event, 10)
	for i := range 10 {
		upstream <- watch.Event{Type: watch.Added, Object: &skiffv1alpha1.Instance{ObjectMeta: metav1.ObjectMeta{Name: strconv.Itoa(i)}}}
	}
	w := filterWatch(watch.NewProxyWatcher(upstream), func(e watch.Event) (watch.Event, bool) {
		e.Type = watch.Modified
		return e, e.Object.(*skiffv1alpha1.Instance).Name != "0"
	})
	if e := <-w.ResultChan(); e.Type != watch.Modified || e.Object.(*skiffv1alpha1.Instance).Name != "1" {
		t.Fatalf("first event %s %s; want the second, Modified", e.Type, e.Object.(*skiffv1alpha1.Instance).Name)
	}
	w.Stop()
	w.Stop() // twice is fine
	done := make(chan struct{})
	go func() {
		for range w.ResultChan() {
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the filtered watch did not end after Stop with events left upstream")
	}
}
