package apiserver

import (
	"bytes"
	stdjson "encoding/json"
	"io"
	"reflect"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
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
	head, items, ok := p.split(obj)
	if !ok {
		return p.Serializer.Encode(obj, w)
	}
	if _, err := w.Write(head); err != nil {
		return err
	}
	if err := p.encodeItems(items, w); err != nil {
		return err
	}
	_, err := w.Write([]byte("]}\n"))
	return err
}

// itemsEnd is how the library's encoder ends a list whose items are
// last: what split cuts from the list encoded without them.
var itemsEnd = []byte(`"items":[]}` + "\n")

// split returns, for a list of at least parallelListMin items, what the
// library's encoder writes before its first item and the items; false
// for anything else, which goes to the library's encoder as it is. The
// head is the library's own: the list without its items, encoded, up to
// where the items go.
func (p parallelLists) split(obj runtime.Object) (head []byte, items []runtime.Object, ok bool) {
	if p.workers < 2 {
		return nil, nil, false
	}
	if _, ok := obj.(stdjson.Marshaler); ok {
		return nil, nil, false
	}
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct || v.Elem().NumField() == 0 {
		return nil, nil, false
	}
	last := v.Elem().NumField() - 1
	if f := v.Elem().Field(last); f.Kind() != reflect.Slice || f.Len() < parallelListMin {
		return nil, nil, false
	}
	items, err := meta.ExtractList(obj)
	if err != nil {
		return nil, nil, false
	}
	empty := reflect.New(v.Elem().Type())
	empty.Elem().Set(v.Elem())
	f := empty.Elem().Field(last)
	if !f.CanSet() {
		return nil, nil, false
	}
	f.Set(reflect.MakeSlice(f.Type(), 0, 0))
	var b bytes.Buffer
	if err := p.Serializer.Encode(empty.Interface().(runtime.Object), &b); err != nil {
		return nil, nil, false
	}
	head, ok = bytes.CutSuffix(b.Bytes(), itemsEnd)
	if !ok {
		return nil, nil, false
	}
	return append(head, `"items":[`...), items, true
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
