package apiserver

import (
	"bytes"
	"errors"
	"fmt"
	goruntime "runtime"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/utils/ptr"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// streamingJSON is the library's serializer parallelLists stands in for.
func streamingJSON(t testing.TB) *json.Serializer {
	t.Helper()
	sch, err := newSchemes()
	if err != nil {
		t.Fatal(err)
	}
	return json.NewSerializerWithOptions(kindMeta{}, sch.full, sch.full, json.SerializerOptions{StreamingCollectionsEncoding: true})
}

// instanceList is a list of n Instances that differ in name, labels and
// status, with characters encoding/json escapes.
func instanceList(n int) *skiffv1alpha1.InstanceList {
	list := &skiffv1alpha1.InstanceList{
		TypeMeta: metav1.TypeMeta{APIVersion: "skiff.dev/v1alpha1", Kind: "InstanceList"},
		ListMeta: metav1.ListMeta{ResourceVersion: "98765", Continue: "token<&>", RemainingItemCount: ptr.To[int64](3)},
		Items:    make([]skiffv1alpha1.Instance, n),
	}
	for i := range list.Items {
		inst := runningInstance()
		inst.Name = fmt.Sprintf("web-%d", i)
		inst.Labels["note"] = strings.Repeat("<ü&>", i%5)
		inst.Status.Message = fmt.Sprintf("\u2028 line %d \"quoted\"", i)
		list.Items[i] = *inst
	}
	return list
}

func encodeWith(t *testing.T, enc runtime.Encoder, obj runtime.Object) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := enc.Encode(obj, &b); err != nil {
		t.Fatalf("encode %T: %v", obj, err)
	}
	return b.Bytes()
}

// TestParallelListIsTheStream checks that parallelLists writes the very
// bytes of the library's streaming encoder: lists below, at and above the
// threshold, chunk boundaries and a ragged last chunk, any number of
// workers, an empty and a nil list, a single object.
func TestParallelListIsTheStream(t *testing.T) {
	stream := streamingJSON(t)
	objects := map[string]runtime.Object{
		"an Instance": runningInstance(),
		"nil items":   &skiffv1alpha1.InstanceList{TypeMeta: metav1.TypeMeta{APIVersion: "skiff.dev/v1alpha1", Kind: "InstanceList"}},
		"a Workload list": &skiffv1alpha1.WorkloadList{
			TypeMeta: metav1.TypeMeta{APIVersion: "skiff.dev/v1alpha1", Kind: "WorkloadList"},
			Items:    make([]skiffv1alpha1.Workload, parallelListMin+1),
		},
		"no type meta": &skiffv1alpha1.InstanceList{Items: instanceList(parallelListMin).Items},
	}
	for _, n := range []int{0, 1, parallelListMin - 1, parallelListMin, parallelListMin + 1, 8 * listChunk, 1000 + 7} {
		objects[fmt.Sprintf("%d Instances", n)] = instanceList(n)
	}
	// The parallel path must be the one taken, or the comparison below
	// compares the stream with itself.
	for name, want := range map[string]bool{
		"an Instance": false, "nil items": false, fmt.Sprintf("%d Instances", parallelListMin-1): false,
		fmt.Sprintf("%d Instances", parallelListMin): true, "1007 Instances": true, "a Workload list": true, "no type meta": true,
	} {
		if _, _, got := newParallelLists(stream, 2).split(objects[name]); got != want {
			t.Errorf("%s: encoded in parallel %v, want %v", name, got, want)
		}
	}
	for name, obj := range objects {
		want := encodeWith(t, stream, obj)
		for _, workers := range []int{1, 2, 3, 8} {
			got := encodeWith(t, newParallelLists(stream, workers), obj)
			if !bytes.Equal(got, want) {
				i := 0
				for i < len(got) && i < len(want) && got[i] == want[i] {
					i++
				}
				t.Fatalf("%s, %d workers: %d bytes differ from the stream's %d at byte %d: %.80q, want %.80q",
					name, workers, len(got), len(want), i, got[i:], want[i:])
			}
		}
	}
}

// TestParallelListErrors checks that an item that cannot be encoded and a
// writer that fails each end the encode with their error.
func TestParallelListErrors(t *testing.T) {
	stream := streamingJSON(t)
	list := instanceList(1000)
	list.Items[700].ManagedFields[0].FieldsV1 = &metav1.FieldsV1{Raw: []byte(`{"f:spec":`)}
	err := newParallelLists(stream, 2).Encode(list, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "FieldsV1") && !strings.Contains(err.Error(), "unexpected end of JSON") {
		t.Fatalf("encoding an Instance with broken managed fields: got %v, want the JSON error", err)
	}
	if streamErr := stream.Encode(list, &bytes.Buffer{}); streamErr == nil {
		t.Fatalf("the stream encoded an Instance with broken managed fields")
	}

	broken := errors.New("connection reset")
	w := &failingWriter{after: 100 << 10, err: broken}
	if err := newParallelLists(stream, 2).Encode(instanceList(1000), w); !errors.Is(err, broken) {
		t.Fatalf("writing to a failing connection: got %v, want %v", err, broken)
	}
	if w.writes > 2*len(instanceList(1000).Items)/listChunk {
		t.Fatalf("%d writes after the connection failed, want the encode to stop", w.writes)
	}
}

// failingWriter fails every write once after bytes have been written.
type failingWriter struct {
	after, n, writes int
	err              error
}

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n >= w.after {
		w.writes++
		return 0, w.err
	}
	w.n += len(p)
	return len(p), nil
}

// TestSkiffGroupEncodesListsInParallel checks that the skiff.dev group's
// JSON serializer is parallelLists.
func TestSkiffGroupEncodesListsInParallel(t *testing.T) {
	sch, err := newSchemes()
	if err != nil {
		t.Fatal(err)
	}
	for _, info := range newSkiffSerializer(sch.codecs, sch.full).SupportedMediaTypes() {
		if info.MediaType != runtime.ContentTypeJSON {
			continue
		}
		if _, ok := info.Serializer.(parallelLists); !ok {
			t.Fatalf("the skiff.dev group's JSON serializer is %T, want parallelLists", info.Serializer)
		}
		return
	}
	t.Fatal("the skiff.dev group has no JSON serializer")
}

// BenchmarkListEncoding encodes a list of 10,000 Running Instances as the
// library's stream does and as parallelLists does.
func BenchmarkListEncoding(b *testing.B) {
	stream := streamingJSON(b)
	list := instanceList(10000)
	for _, bc := range []struct {
		name string
		enc  runtime.Encoder
	}{{"stream", stream}, {"parallel", newParallelLists(stream, goruntime.GOMAXPROCS(0))}} {
		b.Run(bc.name, func(b *testing.B) {
			var out bytes.Buffer
			for b.Loop() {
				out.Reset()
				if err := bc.enc.Encode(list, &out); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(out.Len()))
		})
	}
}
