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

// recallingCodec is the storage's codec. It remembers a copy of each object
// it has just encoded, with the bytes it encoded it to: the etcd store
// decodes every object it writes from those very bytes to hand it back to
// the caller (create, update, bind, status), and the copy, defaulted as a
// decode would default it, is that decode for a fifth of the cost (a JSON
// decode of an Instance is most of a write's storage CPU,
// BenchmarkStorageRecall). Bytes from anywhere else, etcd's reads and
// watch events among them, are decoded as ever.
//
// The bytes are known by identity, not content: the same slice (first
// element and length) that Encode wrote. Each slot holds its slice, so its
// memory cannot be reused for other bytes while remembered.
type recallingCodec struct {
	runtime.Codec
	defaulter runtime.ObjectDefaulter

	mu    sync.Mutex
	slots [recallSlots]recalled
	next  int
}

// recalled is one encoding: the bytes and a copy of the object as
// decoding them gives it.
type recalled struct {
	data []byte
	obj  runtime.Object
}

func newRecallingCodec(codec runtime.Codec, defaulter runtime.ObjectDefaulter) *recallingCodec {
	return &recallingCodec{Codec: codec, defaulter: defaulter}
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
	if len(data) == 0 {
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
	c.slots[c.next] = recalled{data: data, obj: cp}
	c.next = (c.next + 1) % recallSlots
	c.mu.Unlock()
	return nil
}

// Decode gives into the remembered copy when data is the very slice an
// Encode wrote and into is of the copy's type; otherwise it decodes data.
func (c *recallingCodec) Decode(data []byte, defaults *schema.GroupVersionKind, into runtime.Object) (runtime.Object, *schema.GroupVersionKind, error) {
	if into != nil && len(data) > 0 {
		if obj := c.recall(data, into); obj != nil {
			reflect.ValueOf(into).Elem().Set(reflect.ValueOf(obj).Elem())
			gvk := into.GetObjectKind().GroupVersionKind()
			return into, &gvk, nil
		}
	}
	return c.Codec.Decode(data, defaults, into)
}

// recall takes the copy remembered with data, if it is of into's type.
func (c *recallingCodec) recall(data []byte, into runtime.Object) runtime.Object {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.slots {
		s := &c.slots[i]
		if len(s.data) != len(data) || &s.data[0] != &data[0] {
			continue
		}
		obj := s.obj
		*s = recalled{}
		if reflect.TypeOf(obj) != reflect.TypeOf(into) {
			return nil
		}
		return obj
	}
	return nil
}

// storageCodec is how objects are stored: JSON of the served group
// versions (as the codec factory's LegacyCodec), whose kind is read with
// kindMeta; bytes that are not JSON go to the factory's universal decoder.
func storageCodec(sch *schemes) runtime.Codec {
	plain := json.NewSerializerWithOptions(kindMeta{}, sch.full, sch.full, json.SerializerOptions{})
	decoder := recognizer.NewDecoder(plain, sch.codecs.UniversalDeserializer())
	return versioning.NewDefaultingCodecForScheme(sch.full, plain, decoder, schema.GroupVersions(servedGroupVersions()), runtime.InternalGroupVersioner)
}
