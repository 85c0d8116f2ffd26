package apiserver

import (
	"bytes"
	"hash/maphash"
	"io"
	"reflect"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/runtime/serializer/recognizer"
	"k8s.io/apimachinery/pkg/runtime/serializer/versioning"
)

// recallSlots is how many encodings the storage codec remembers. A write
// decodes what it encoded a few milliseconds later, after its etcd
// transaction, and the watch cache decodes the same bytes from etcd's
// watch soon after; the store also encodes objects it does not write (the
// cached object an update starts from), which take slots too. With tens
// of writes in flight, 512 slots keep every one still to be decoded. A
// slot lost to a busy moment costs one ordinary decode, nothing else.
const recallSlots = 512

// recallMaxBytes bounds what one slot holds: larger objects (a big Secret
// or ConfigMap) are decoded as ever, so the slots hold a few MB of
// Instance-sized objects and never more than some tens of MB.
const recallMaxBytes = 16 << 10

// recallingCodec is the storage's codec. It remembers a copy of each object
// it has just encoded, with the bytes it encoded it to, and stands a copy
// of that for a decode of those bytes, at a fraction of the cost of the
// JSON decode (BenchmarkStorageRecall). Every write is decoded again at once,
// twice: by the etcd store, to hand the written object back to the caller
// (create, update, bind, status), and by the watch cache, from the event
// etcd's watch delivers; and an update that finds the watch cache behind
// decodes what etcd holds, often what was just written. Bytes it has not
// encoded lately are decoded as ever.
//
// A copy is the decode as far as anything outside the process can tell:
// it has the stored kind and the decode's defaults, encoded again it gives
// the same bytes, and its metadata's timestamps are cut to the second, as
// JSON keeps them. In memory it may keep what the JSON drops elsewhere (a
// sub-second time the server set in a spec or status, an empty list that
// omitempty leaves out).
//
// The bytes are known by content: the slice Encode wrote (the store's
// decode gets that very slice) or any equal one (etcd's copies). Each slot
// holds its slice, so its memory cannot be reused for other bytes while
// remembered, and its object, which no reader is given: each decode gets a
// copy of its own.
type recallingCodec struct {
	runtime.Codec
	defaulter runtime.ObjectDefaulter
	// convertor and decodeVersion are the codec's own: a decode without a
	// target object converts to decodeVersion (an internal version).
	convertor     runtime.ObjectConvertor
	decodeVersion runtime.GroupVersioner
	seed          maphash.Seed

	mu     sync.Mutex
	byHash map[uint64]*recalled
	// order is the remembered encodings, oldest first from next, to
	// forget the oldest when the slots are full.
	order [recallSlots]*recalled
	next  int
}

// recalled is one encoding: the bytes and the object as decoding them
// gives it.
type recalled struct {
	hash uint64
	data []byte
	obj  runtime.Object
	gvk  schema.GroupVersionKind
}

func newRecallingCodec(codec runtime.Codec, scheme *runtime.Scheme) *recallingCodec {
	return &recallingCodec{
		Codec: codec, defaulter: scheme,
		convertor: runtime.UnsafeObjectConvertor(scheme), decodeVersion: runtime.InternalGroupVersioner,
		seed: maphash.MakeSeed(), byHash: make(map[uint64]*recalled, recallSlots),
	}
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
	h := maphash.Bytes(c.seed, data)
	if c.lookup(h, data) != nil {
		// The object an update starts from, encoded again to compare:
		// the write that stored it is remembered already.
		return nil
	}
	gvk, err := storedKind(data)
	if err != nil {
		return nil // not remembered: its decode reads the bytes
	}
	cp := obj.DeepCopyObject()
	// As the decode gives it: the stored kind, the defaults, and the
	// metadata's times as JSON keeps them.
	cp.GetObjectKind().SetGroupVersionKind(gvk)
	c.defaulter.Default(cp)
	jsonTimes(cp)
	r := &recalled{hash: h, data: data, obj: cp, gvk: gvk}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.order[c.next]; old != nil && c.byHash[old.hash] == old {
		delete(c.byHash, old.hash)
	}
	c.byHash[r.hash] = r
	c.order[c.next] = r
	c.next = (c.next + 1) % recallSlots
	return nil
}

// lookup is the encoding remembered with bytes equal to data, whose hash
// is h, or nil.
func (c *recallingCodec) lookup(h uint64, data []byte) *recalled {
	c.mu.Lock()
	r := c.byHash[h]
	c.mu.Unlock()
	if r == nil || !bytes.Equal(r.data, data) {
		return nil
	}
	return r
}

// Decode gives a copy of a remembered object when data is what an Encode
// wrote and into, if any, is of the object's type; otherwise it decodes
// data.
func (c *recallingCodec) Decode(data []byte, defaults *schema.GroupVersionKind, into runtime.Object) (runtime.Object, *schema.GroupVersionKind, error) {
	if len(data) == 0 || len(data) > recallMaxBytes {
		return c.Codec.Decode(data, defaults, into)
	}
	obj, gvk := c.recall(data, into)
	if obj == nil {
		return c.Codec.Decode(data, defaults, into)
	}
	if into == nil {
		// As the codec converts what it decodes without a target (and
		// with the error it would give).
		out, err := c.convertor.ConvertToVersion(obj, c.decodeVersion)
		return out, &gvk, err
	}
	reflect.ValueOf(into).Elem().Set(reflect.ValueOf(obj).Elem())
	gvk = into.GetObjectKind().GroupVersionKind()
	return into, &gvk, nil
}

// recall is a copy of the object remembered with data, if it is of
// into's type (or into is nil): each decode gets one of its own.
func (c *recallingCodec) recall(data []byte, into runtime.Object) (runtime.Object, schema.GroupVersionKind) {
	r := c.lookup(maphash.Bytes(c.seed, data), data)
	if r == nil || into != nil && reflect.TypeOf(r.obj) != reflect.TypeOf(into) {
		return nil, schema.GroupVersionKind{}
	}
	return r.obj.DeepCopyObject(), r.gvk
}

// jsonTimes cuts obj's metadata timestamps (creation, deletion, managed
// fields'), which the server sets to the nanosecond, to the second and
// local time, as decoding their JSON gives them.
func jsonTimes(obj runtime.Object) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return
	}
	m.SetCreationTimestamp(jsonTime(m.GetCreationTimestamp()))
	if d := m.GetDeletionTimestamp(); d != nil {
		t := jsonTime(*d)
		m.SetDeletionTimestamp(&t)
	}
	entries := m.GetManagedFields()
	for i := range entries {
		if entries[i].Time != nil {
			t := jsonTime(*entries[i].Time)
			entries[i].Time = &t
		}
	}
}

// jsonTime is t as its JSON (RFC 3339, to the second) decodes.
func jsonTime(t metav1.Time) metav1.Time {
	if t.IsZero() {
		return t
	}
	return metav1.NewTime(t.Truncate(time.Second).Local())
}

// storageCodec is how objects are stored: JSON of the served group
// versions (as the codec factory's LegacyCodec), whose kind is read with
// kindMeta; bytes that are not JSON go to the factory's universal decoder.
func storageCodec(sch *schemes) runtime.Codec {
	plain := json.NewSerializerWithOptions(kindMeta{}, sch.full, sch.full, json.SerializerOptions{})
	decoder := recognizer.NewDecoder(plain, sch.codecs.UniversalDeserializer())
	return versioning.NewDefaultingCodecForScheme(sch.full, plain, decoder, schema.GroupVersions(servedGroupVersions()), runtime.InternalGroupVersioner)
}
