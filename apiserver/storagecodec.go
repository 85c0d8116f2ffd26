package apiserver

import (
	"bytes"
	"io"
	"reflect"
	"sync"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/runtime/serializer/recognizer"
	"k8s.io/apimachinery/pkg/runtime/serializer/versioning"
)

// recallSlots is how many encodings the storage codec remembers. A write
// decodes what it encoded a few milliseconds later, after its etcd
// transaction; with tens of writes in flight, 128 slots keep every one
// that is still to be decoded. A slot lost to a busy moment costs one
// ordinary decode, nothing else.
const recallSlots = 128

// recallMaxBytes bounds what one slot holds: larger objects (a big Secret
// or ConfigMap) are decoded as ever, so the slots never hold more than a
// few MB.
const recallMaxBytes = 16 << 10

// recallingCodec is the storage's codec. It remembers a copy of each object
// it has just encoded, with the bytes it encoded it to: the etcd store
// decodes every object it writes from those very bytes to hand it back to
// the caller (create, update, bind, status), and the copy, with the stored
// kind and defaulted as a decode would default it, stands for that decode
// at a third of the cost (BenchmarkStorageRecall). Bytes from anywhere
// else, etcd's reads and watch events among them, are decoded as ever.
//
// The copy is the decode as far as anything outside the process can tell:
// encoded again it gives the same bytes. In memory it keeps what the JSON
// drops (sub-second timestamps, an empty list that omitempty leaves out);
// what the store returns from a write is only encoded for the response.
//
// The bytes are known by identity, not content: the same slice (first
// element and length) that Encode wrote. Each slot holds its slice, so its
// memory cannot be reused for other bytes while remembered.
type recallingCodec struct {
	runtime.Codec
	defaulter runtime.ObjectDefaulter

	mu     sync.Mutex
	byData map[*byte]recalled
	// order is the remembered slices' first bytes, oldest first from
	// next, to forget the oldest when the slots are full.
	order [recallSlots]*byte
	next  int
}

// recalled is one encoding: the bytes and a copy of the object as
// decoding them gives it.
type recalled struct {
	data []byte
	obj  runtime.Object
}

func newRecallingCodec(codec runtime.Codec, defaulter runtime.ObjectDefaulter) *recallingCodec {
	return &recallingCodec{Codec: codec, defaulter: defaulter, byData: make(map[*byte]recalled, recallSlots)}
}

// Encode encodes obj to w; into an empty bytes.Buffer (as runtime.Encode
// does), it also remembers a copy of obj with the bytes.
func (c *recallingCodec) Encode(obj runtime.Object, w io.Writer) error {
	buf, ok := w.(*bytes.Buffer)
	if !ok || buf.Len() != 0 {
		return c.Codec.Encode(obj, w)
	}
	if err := c.Codec.Encode(obj, w); err != nil {
		return err
	}
	data := buf.Bytes()
	if len(data) == 0 || len(data) > recallMaxBytes {
		return nil
	}
	gvk, err := storedKind(data)
	if err != nil {
		return nil // not remembered: its decode reads the bytes
	}
	cp := obj.DeepCopyObject()
	// As the decode gives it: the stored kind, then the defaults.
	cp.GetObjectKind().SetGroupVersionKind(gvk)
	c.defaulter.Default(cp)
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.order[c.next]; old != nil {
		delete(c.byData, old)
	}
	c.byData[&data[0]] = recalled{data: data, obj: cp}
	c.order[c.next] = &data[0]
	c.next = (c.next + 1) % recallSlots
	return nil
}

// Decode gives into the remembered copy when data is the very slice an
// Encode wrote and into is of the copy's type; otherwise it decodes data.
func (c *recallingCodec) Decode(data []byte, defaults *schema.GroupVersionKind, into runtime.Object) (runtime.Object, *schema.GroupVersionKind, error) {
	if into != nil && len(data) > 0 && len(data) <= recallMaxBytes {
		if obj := c.recall(data, into); obj != nil {
			reflect.ValueOf(into).Elem().Set(reflect.ValueOf(obj).Elem())
			gvk := into.GetObjectKind().GroupVersionKind()
			return into, &gvk, nil
		}
	}
	return c.Codec.Decode(data, defaults, into)
}

// recall takes the copy remembered with data, if it is of into's type.
// Taken, it is forgotten: no two decodes share it.
func (c *recallingCodec) recall(data []byte, into runtime.Object) runtime.Object {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.byData[&data[0]]
	if !ok || len(r.data) != len(data) {
		return nil
	}
	// Its place in order stays: forgetting it again later is a no-op, or
	// forgets a newer slice at the same address a little early.
	delete(c.byData, &data[0])
	if reflect.TypeOf(r.obj) != reflect.TypeOf(into) {
		return nil
	}
	return r.obj
}

// storageCodec is how objects are stored: JSON of the served group
// versions (as the codec factory's LegacyCodec), whose kind is read with
// kindMeta; bytes that are not JSON go to the factory's universal decoder.
func storageCodec(sch *schemes) runtime.Codec {
	plain := json.NewSerializerWithOptions(kindMeta{}, sch.full, sch.full, json.SerializerOptions{})
	decoder := recognizer.NewDecoder(plain, sch.codecs.UniversalDeserializer())
	return versioning.NewDefaultingCodecForScheme(sch.full, plain, decoder, schema.GroupVersions(servedGroupVersions()), runtime.InternalGroupVersioner)
}
