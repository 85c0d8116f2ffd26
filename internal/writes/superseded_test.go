package writes

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

func TestSuperseded(t *testing.T) {
	at := func(rv string) *skiffv1alpha1.Instance {
		return &skiffv1alpha1.Instance{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", ResourceVersion: rv}}
	}
	var s Superseded
	if s.Stale(at("1")) {
		t.Fatal("nothing written yet, and stale")
	}
	s.Wrote(at("2"), "1") // a finalizer write, 1 -> 2
	s.Wrote(at("3"), "2") // then a status write, 2 -> 3
	for _, rv := range []string{"1", "2"} {
		if !s.Stale(at(rv)) {
			t.Errorf("version %s, replaced by our own writes, is not stale", rv)
		}
	}
	if s.Stale(at("3")) {
		t.Error("the version our last write made is stale")
	}
	if s.Stale(at("1")) {
		t.Error("the record outlived the cache catching up")
	}
	s.Wrote(at("5"), "4")
	s.Forget(types.NamespacedName{Namespace: "default", Name: "web"})
	if s.Stale(at("4")) {
		t.Error("a forgotten object is still stale")
	}
}
