package apiserver

import (
	"io"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// cached stands for the watch cache's wrapper of an object.
type cached struct{ runtime.Object }

func (c cached) CacheEncode(runtime.Identifier, func(runtime.Object, io.Writer) error, io.Writer) error {
	return nil
}
func (c cached) GetObject() runtime.Object { return c.Object }

var _ runtime.CacheableObject = cached{}

func TestEventNode(t *testing.T) {
	n := &skiffv1alpha1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}
	for name, obj := range map[string]runtime.Object{"plain": n, "from the watch cache": cached{n}} {
		if got, ok := eventNode(obj); !ok || got.Name != "n1" {
			t.Errorf("%s: %v, %v; want node n1", name, got, ok)
		}
	}
	if _, ok := eventNode(&metav1.Status{}); ok {
		t.Error("a Status counts as a Node")
	}
}
