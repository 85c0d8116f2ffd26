package apiserver

import (
	"bytes"
	stdjson "encoding/json"
	"fmt"
	"io"
	"reflect"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
)

// A list of at least parallelListMin items is encoded by several
// goroutines, listChunk items to a task; smaller ones by the library's
// streaming encoder alone. Below a few hundred items the goroutines cost
// more than they save.
const (
	parallelListMin = 256
	listChunk       = 64
)

// parallelLists is the skiff.dev group's JSON serializer with lists of
// many items encoded on every core. The library's streaming encoder
// encodes a list's items one after another on the request's goroutine, so
// a list of 10,000 Instances is one core's work however many are idle:
// encoding/json's reflection over each item was two thirds of a list's
// CPU. parallelLists writes the same bytes (TestParallelListIsTheStream),
// in the same order, while workers encode the chunks that follow; at most
// a few chunks wait encoded, so memory stays bounded as with the stream.
type parallelLists struct {
	*json.Serializer
	workers int
	buffers *sync.Pool
}

func newParallelLists(s *json.Serializer, workers int) parallelLists {
	return parallelLists{Serializer: s, workers: workers, buffers: &sync.Pool{New: func() any { return new(bytes.Buffer) }}}
}

// Encode writes obj as JSON to w.
func (p parallelLists) Encode(obj runtime.Object, w io.Writer) error {
	if p.workers < 2 {
		return p.Serializer.Encode(obj, w)
	}
	if _, ok := obj.(stdjson.Marshaler); ok {
		return p.Serializer.Encode(obj, w)
	}
	typeMeta, listMeta, ok := listHead(obj)
	if !ok {
		return p.Serializer.Encode(obj, w)
	}
	items, err := meta.ExtractList(obj)
	if err != nil || len(items) < parallelListMin {
		return p.Serializer.Encode(obj, w)
	}
	head, err := encodeListHead(typeMeta, listMeta)
	if err != nil {
		return err
	}
	if _, err := w.Write(head); err != nil {
		return err
	}
	if err := p.encodeItems(items, w); err != nil {
		return err
	}
	_, err = w.Write([]byte("]}\n"))
	return err
}

// listHead returns the TypeMeta and ListMeta of a list shaped as the
// library's streaming encoder requires (TypeMeta inline, then ListMeta as
// "metadata", then a non-nil "items"); false for anything else, which
// goes to the library's encoder as it is.
func listHead(obj runtime.Object) (metav1.TypeMeta, metav1.ListMeta, bool) {
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return metav1.TypeMeta{}, metav1.ListMeta{}, false
	}
	v = v.Elem()
	t := v.Type()
	if t.NumField() != 3 {
		return metav1.TypeMeta{}, metav1.ListMeta{}, false
	}
	typeMeta, ok := v.Field(0).Interface().(metav1.TypeMeta)
	if !ok || !t.Field(0).Anonymous {
		return metav1.TypeMeta{}, metav1.ListMeta{}, false
	}
	if tag, ok := t.Field(0).Tag.Lookup("json"); !ok || (tag != "" && tag != ",inline") {
		return metav1.TypeMeta{}, metav1.ListMeta{}, false
	}
	listMeta, ok := v.Field(1).Interface().(metav1.ListMeta)
	if !ok || t.Field(1).Tag.Get("json") != "metadata,omitempty" {
		return metav1.TypeMeta{}, metav1.ListMeta{}, false
	}
	items := v.Field(2)
	if t.Field(2).Tag.Get("json") != "items" || items.Kind() != reflect.Slice || items.IsNil() {
		return metav1.TypeMeta{}, metav1.ListMeta{}, false
	}
	return typeMeta, listMeta, true
}

// encodeListHead is what the streaming encoder writes before a list's
// first item.
func encodeListHead(typeMeta metav1.TypeMeta, listMeta metav1.ListMeta) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	pair := func(key string, value any) error {
		k, err := stdjson.Marshal(key)
		if err != nil {
			return err
		}
		v, err := stdjson.Marshal(value)
		if err != nil {
			return fmt.Errorf("encode list %s: %w", key, err)
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
		b.WriteByte(',')
		return nil
	}
	if typeMeta.Kind != "" {
		if err := pair("kind", typeMeta.Kind); err != nil {
			return nil, err
		}
	}
	if typeMeta.APIVersion != "" {
		if err := pair("apiVersion", typeMeta.APIVersion); err != nil {
			return nil, err
		}
	}
	if err := pair("metadata", listMeta); err != nil {
		return nil, err
	}
	b.WriteString(`"items":[`)
	return b.Bytes(), nil
}

// listTask is listChunk items encoded, each followed by a comma.
type listTask struct {
	items []runtime.Object
	out   *bytes.Buffer
	err   error
	done  chan struct{}
}

// encodeItems writes items to w, comma-separated, in order. Workers encode
// chunks; this goroutine writes each as soon as it and those before it
// are done. At most twice as many chunks as workers are out at a time.
func (p parallelLists) encodeItems(items []runtime.Object, w io.Writer) error {
	inOrder := make(chan *listTask, 2*p.workers)
	work := make(chan *listTask)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range p.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range work {
				t.err = encodeChunk(t.items, t.out)
				close(t.done)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(inOrder)
		defer close(work)
		for lo := 0; lo < len(items); lo += listChunk {
			t := &listTask{items: items[lo:min(lo+listChunk, len(items))], out: p.buffers.Get().(*bytes.Buffer), done: make(chan struct{})}
			t.out.Reset()
			select {
			case inOrder <- t:
			case <-stop:
				return
			}
			select {
			case work <- t:
			case <-stop:
				// The writer stopped before t: nothing waits for it.
				return
			}
		}
	}()
	err := p.writeInOrder(inOrder, w)
	close(stop)
	// Nothing reads items once Encode returns.
	wg.Wait()
	return err
}

// writeInOrder writes each task's output as it is done, without the last
// item's comma.
func (p parallelLists) writeInOrder(inOrder <-chan *listTask, w io.Writer) error {
	var last *listTask
	flush := func(t *listTask, final bool) error {
		out := t.out.Bytes()
		if final {
			out = out[:len(out)-1]
		}
		_, err := w.Write(out)
		p.buffers.Put(t.out)
		return err
	}
	for t := range inOrder {
		<-t.done
		if t.err != nil {
			return t.err
		}
		if last != nil {
			if err := flush(last, false); err != nil {
				return err
			}
		}
		last = t
	}
	if last == nil {
		return nil
	}
	return flush(last, true)
}

// encodeChunk appends each item's JSON and a comma to out, the bytes
// json.Marshal gives.
func encodeChunk(items []runtime.Object, out *bytes.Buffer) error {
	enc := stdjson.NewEncoder(out)
	for _, item := range items {
		if err := enc.Encode(item); err != nil {
			return err
		}
		// Encode ends a value with a newline; json.Marshal does not.
		out.Truncate(out.Len() - 1)
		out.WriteByte(',')
	}
	return nil
}
