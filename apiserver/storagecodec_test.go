package apiserver

import (
	"bytes"
	encodingjson "encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/utils/ptr"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// storedForms are objects as the storage holds them: second-precision
// timestamps (what JSON keeps), of skiff's kinds and upstream ones.
func storedForms(t testing.TB, base runtime.Codec) []runtime.Object {
	t.Helper()
	sec := metav1.NewTime(time.Now().Truncate(time.Second))
	inst := runningInstance()
	inst.CreationTimestamp = sec
	for i := range inst.ManagedFields {
		inst.ManagedFields[i].Time = &sec
	}
	inst.Status.ContainerStatuses[0].State.Running.StartedAt = sec
	for i := range inst.Status.Conditions {
		inst.Status.Conditions[i].LastTransitionTime = sec
	}
	wl := newWorkload("web", 3)
	wl.Annotations = map[string]string{"note": `quotes " and \ slashes`}
	wl.Spec.Template.Spec.Containers[0].Env = []skiffv1alpha1.EnvVar{{Name: "A", Value: "1"}}
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "node-1", Namespace: "skiff-node-lease"},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr.To("node-1"), LeaseDurationSeconds: ptr.To[int32](40)},
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "default"},
		Data:       map[string][]byte{"password": []byte("s3cret")},
	}
	var out []runtime.Object
	for _, obj := range []runtime.Object{inst, wl, lease, secret} {
		data, err := runtime.Encode(base, obj)
		if err != nil {
			t.Fatal(err)
		}
		stored := obj.DeepCopyObject()
		if _, _, err := base.Decode(data, nil, stored); err != nil {
			t.Fatal(err)
		}
		out = append(out, stored)
	}
	return out
}

// remembered is how many encodings c remembers.
func remembered(c *recallingCodec) int { return len(entries(c)) }

// entries is what c remembers.
func entries(c *recallingCodec) []*recalled {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*recalled
	for _, r := range c.byHash {
		out = append(out, r)
	}
	return out
}

// countingCodec counts the decodes that reach the codec it wraps.
type countingCodec struct {
	runtime.Codec
	decodes int
}

func (c *countingCodec) Decode(data []byte, defaults *schema.GroupVersionKind, into runtime.Object) (runtime.Object, *schema.GroupVersionKind, error) {
	c.decodes++
	return c.Codec.Decode(data, defaults, into)
}

// forget empties c's slots.
func forget(c *recallingCodec) {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.byHash)
	c.order = [recallSlots]*recalled{}
}

// fresh is a new, empty object of obj's type.
func fresh(obj runtime.Object) runtime.Object {
	return reflect.New(reflect.TypeOf(obj).Elem()).Interface().(runtime.Object)
}

// decodedAs fails unless got is what decoding gave (want): the same type,
// kind, defaults and fields.
func decodedAs(t *testing.T, what string, got, want runtime.Object) {
	t.Helper()
	if reflect.TypeOf(got) != reflect.TypeOf(want) {
		t.Fatalf("%s: recalled a %T, decoded a %T", what, got, want)
	}
	if !apiequality.Semantic.DeepEqual(got, want) {
		t.Fatalf("%s recalled:\n%#v\nwant, as decoded:\n%#v", what, got, want)
	}
	if got.GetObjectKind().GroupVersionKind() != want.GetObjectKind().GroupVersionKind() {
		t.Fatalf("%s recalled as %v, decoded as %v", what, got.GetObjectKind().GroupVersionKind(), want.GetObjectKind().GroupVersionKind())
	}
}

// What the storage codec gives back for bytes it has just encoded is what
// decoding them gives, to each decode that follows a write: the store's
// (into an object, from the very bytes written), the watch cache's (no
// target object, from etcd's copy of the bytes) and any later read of
// them. Each gets an object of its own.
func TestRecalledDecodeIsTheDecode(t *testing.T) {
	sch, err := newSchemes()
	if err != nil {
		t.Fatal(err)
	}
	base := storageCodec(sch)
	counted := &countingCodec{Codec: base}
	c := newRecallingCodec(counted, sch.full)
	// As the store writes them: without their kind (an internal object's
	// TypeMeta is empty), and one without its defaults.
	objs := storedForms(t, base)
	undefaulted := newWorkload("undefaulted", 1)
	undefaulted.Spec.Replicas = nil
	objs = append(objs, undefaulted)
	for _, obj := range objs {
		obj.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
		data, err := runtime.Encode(c, obj)
		if err != nil {
			t.Fatal(err)
		}
		if n := remembered(c); n != 1 {
			t.Fatalf("%T: %d objects remembered after its encode, want 1", obj, n)
		}
		if plain, err := runtime.Encode(base, obj); err != nil || !bytes.Equal(plain, data) {
			t.Fatalf("%T: encoded %s, want %s (%v)", obj, data, plain, err)
		}
		// Encoded again (as an update encodes the object it starts
		// from), it is remembered already: no second copy.
		first := entries(c)
		if _, err := runtime.Encode(c, obj); err != nil {
			t.Fatal(err)
		}
		if again := entries(c); len(again) != 1 || again[0] != first[0] {
			t.Fatalf("%T: encoded again, %d objects remembered (the same: %v), want the first alone", obj, len(again), len(again) == 1 && again[0] == first[0])
		}
		want := fresh(obj)
		if _, _, err := base.Decode(bytes.Clone(data), nil, want); err != nil {
			t.Fatal(err)
		}
		// The store's decode.
		got := fresh(obj)
		if _, _, err := c.Decode(data, nil, got); err != nil {
			t.Fatal(err)
		}
		decodedAs(t, fmt.Sprintf("%T into an object", obj), got, want)
		// The watch cache's, of etcd's copy of the bytes.
		wantWatch, _, err := base.Decode(bytes.Clone(data), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		gotWatch, _, err := c.Decode(bytes.Clone(data), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		decodedAs(t, fmt.Sprintf("%T without a target", obj), gotWatch, wantWatch)
		if n := remembered(c); n != 1 {
			t.Fatalf("%T: %d objects remembered after two decodes, want 1 (recalled, not taken)", obj, n)
		}
		// Each the reader's own: changing the written object, or one
		// decode's, reaches no other.
		obj.(metav1.Object).SetLabels(map[string]string{"changed": "after"})
		got.(metav1.Object).SetAnnotations(map[string]string{"changed": "by the store"})
		if _, ok := got.(metav1.Object).GetLabels()["changed"]; ok {
			t.Fatalf("%T recalled shares its labels with the object written", obj)
		}
		if _, ok := gotWatch.(metav1.Object).GetAnnotations()["changed"]; ok {
			t.Fatalf("%T: the two decodes share their annotations", obj)
		}
		// A third decode, of etcd's bytes: recalled too, its own again.
		third := fresh(obj)
		if _, _, err := c.Decode(bytes.Clone(data), nil, third); err != nil {
			t.Fatal(err)
		}
		decodedAs(t, fmt.Sprintf("%T decoded a third time", obj), third, want)
		if counted.decodes != 0 {
			t.Fatalf("%T: %d of three decodes read the bytes, want none", obj, counted.decodes)
		}
		if _, ok := third.(metav1.Object).GetAnnotations()["changed"]; ok {
			t.Fatalf("%T: the store's decode and a later one share their annotations", obj)
		}
		forget(c)
	}

	// An object as a create writes it, timestamps to the nanosecond: the
	// copy's metadata times are the decode's, and encoded again it is the
	// decode's bytes.
	inst := runningInstance()
	inst.TypeMeta = metav1.TypeMeta{}
	data, err := runtime.Encode(c, inst)
	if err != nil {
		t.Fatal(err)
	}
	want, got := &skiffv1alpha1.Instance{}, &skiffv1alpha1.Instance{}
	if _, _, err := base.Decode(bytes.Clone(data), nil, want); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Decode(data, nil, got); err != nil || counted.decodes != 0 {
		t.Fatalf("decode: %v, %d decodes of the bytes, want it recalled", err, counted.decodes)
	}
	if !reflect.DeepEqual(got.ObjectMeta, want.ObjectMeta) {
		t.Fatalf("recalled metadata:\n%#v\nwant, as decoded:\n%#v", got.ObjectMeta, want.ObjectMeta)
	}
	gotData, err := runtime.Encode(base, got)
	if err != nil {
		t.Fatal(err)
	}
	wantData, err := runtime.Encode(base, want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gotData, wantData) {
		t.Fatalf("recalled, encoded again:\n%s\nwant, as decoded and encoded again:\n%s", gotData, wantData)
	}

	// Bytes it did not encode are decoded, and a remembered object is not
	// given into another type.
	before := remembered(c)
	other := storedForms(t, base)[1]
	otherData, err := runtime.Encode(base, other)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Decode(otherData, nil, fresh(other)); err != nil || counted.decodes != 1 {
		t.Fatalf("decode of bytes it did not encode: %v, %d decodes of the bytes, want 1", err, counted.decodes)
	}
	if _, _, err := c.Decode(data, nil, &skiffv1alpha1.Workload{}); err == nil || counted.decodes != 2 {
		t.Fatalf("an Instance's bytes into a Workload: %v, %d decodes of the bytes, want an error from the decode", err, counted.decodes)
	}

	// A large object is not remembered: its decode reads the bytes.
	big := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "big", Namespace: "default"},
		Data:       map[string][]byte{"blob": bytes.Repeat([]byte("x"), recallMaxBytes)},
	}
	if data, err = runtime.Encode(c, big); err != nil {
		t.Fatal(err)
	}
	if n := remembered(c); n != before {
		t.Fatalf("%d objects remembered after encoding %d bytes, want %d", n, len(data), before)
	}
	decoded := &corev1.Secret{}
	if _, _, err := c.Decode(data, nil, decoded); err != nil || !bytes.Equal(decoded.Data["blob"], big.Data["blob"]) {
		t.Fatalf("large Secret decoded: %v", err)
	}
}

// Writes in flight at once each get back what they wrote, from the
// store's decode and the watch cache's alike, each decode an object of its
// own (go test -race covers the slots' lock).
func TestRecallUnderConcurrentWrites(t *testing.T) {
	sch, err := newSchemes()
	if err != nil {
		t.Fatal(err)
	}
	base := storageCodec(sch)
	c := newRecallingCodec(base, sch.full)
	inst := storedForms(t, base)[0].(*skiffv1alpha1.Instance)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := inst.DeepCopy()
			mine.Labels = map[string]string{"app": "web"}
			for i := range recallSlots {
				mine.Name = fmt.Sprintf("w%d", w)
				mine.Status.Message = strconv.Itoa(i)
				data, err := runtime.Encode(c, mine)
				if err != nil {
					errs <- err
					return
				}
				stored := &skiffv1alpha1.Instance{}
				if _, _, err := c.Decode(data, nil, stored); err != nil {
					errs <- err
					return
				}
				if err := wroteBack(mine, stored); err != nil {
					errs <- err
					return
				}
				stored.Labels["read-by"] = "the store" // in place
				watched, _, err := c.Decode(bytes.Clone(data), nil, nil)
				if err != nil {
					errs <- err
					return
				}
				if err := wroteBack(mine, watched.(*skiffv1alpha1.Instance)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// wroteBack says how got differs from the version written, if it does.
func wroteBack(wrote, got *skiffv1alpha1.Instance) error {
	if got.Name != wrote.Name || got.Status.Message != wrote.Status.Message {
		return fmt.Errorf("wrote %s version %s, decoded %s version %s", wrote.Name, wrote.Status.Message, got.Name, got.Status.Message)
	}
	if by, ok := got.Labels["read-by"]; ok {
		return fmt.Errorf("%s version %s decoded with a label %s set", got.Name, got.Status.Message, by)
	}
	return nil
}

// kindMeta reads the kind encoding/json would, from any JSON object.
func TestKindMetaAgreesWithTheLibrary(t *testing.T) {
	for _, data := range []string{
		`{"kind":"Instance","apiVersion":"skiff.dev/v1alpha1","metadata":{"name":"a"}}`,
		`{"metadata":{"kind":"Nested","apiVersion":"x/v9"},"apiVersion":"skiff.dev/v1alpha1","kind":"Workload"}`,
		` { "apiVersion" : "v1" , "kind" : "Secret" } `,
		`{"spec":{"a":[1,2,{"b":"]}[{"}],"c":"\"kind\":\"X\""},"kind":"Node","apiVersion":"skiff.dev/v1alpha1"}`,
		`{"KIND":"Upper","ApiVersion":"skiff.dev/v1alpha1"}`,
		`{"kind":"First","kind":"Last","apiVersion":"v1","apiVersion":"skiff.dev/v1alpha1"}`,
		`{"kind":"Escaped\u0041","apiVersion":"skiff.dev\/v1alpha1"}`,
		`{"kind":null,"apiVersion":"v1"}`,
		`{"kind":"Instance"}`,
		`{"apiVersion":"a/b/c","kind":"Bad"}`,
		`{}`,
		`{"n":-1.5e3,"t":true,"f":false,"z":null,"kind":"K","apiVersion":"v1"}`,
		`{"kind":"K\u00e9","apiVersion":"v1"}`,
		`{"kind":"Kélvin","apiVersion":"v1"}`,
		`{"\u212aind":"Kelvin","apiVersion":"v1"}`,
		`{"kind":1,"apiVersion":"v1"}`,
	} {
		if !encodingjson.Valid([]byte(data)) {
			t.Fatalf("test input %s is not JSON", data)
		}
		kindMetaAgrees(t, data)
	}
}

// kindMetaAgrees fails t unless kindMeta reads data as the library does.
func kindMetaAgrees(t *testing.T, data string) {
	t.Helper()
	gotGVK, gotErr := kindMeta{}.Interpret([]byte(data))
	wantGVK, wantErr := json.DefaultMetaFactory.Interpret([]byte(data))
	if (gotErr != nil) != (wantErr != nil) {
		t.Fatalf("%q: error %v, the library's %v", data, gotErr, wantErr)
	}
	if gotErr == nil && *gotGVK != *wantGVK {
		t.Fatalf("%q: %v, the library's %v", data, *gotGVK, *wantGVK)
	}
}

// Bytes that are not JSON, whatever kindMeta makes of their start, are
// refused by the decode.
func TestKindMetaDecodeRefusesBrokenJSON(t *testing.T) {
	sch, err := newSchemes()
	if err != nil {
		t.Fatal(err)
	}
	s := json.NewSerializerWithOptions(kindMeta{}, sch.full, sch.full, json.SerializerOptions{})
	for _, data := range []string{
		`{"kind":"Instance","apiVersion":"skiff.dev/v1alpha1","spec":[1,}}`,
		`{"kind":"Instance","apiVersion":"skiff.dev/v1alpha1","spec":{"a":tru}}`,
		`{"kind":"Instance","apiVersion":"skiff.dev/v1alpha1"} trailing`,
		`{"kind":"Instance","apiVersion":"skiff.dev/v1alpha1",}`,
		`{"kind":"Instance" "apiVersion":"skiff.dev/v1alpha1"}`,
		`{"kind":"Instance","apiVersion":"skiff.dev/v1alpha1"`,
	} {
		if _, _, err := s.Decode([]byte(data), nil, &skiffv1alpha1.Instance{}); err == nil {
			t.Fatalf("%s decoded", data)
		}
	}
}

// FuzzKindMeta checks kindMeta against the library on any JSON object.
func FuzzKindMeta(f *testing.F) {
	f.Add(`{"kind":"Instance","apiVersion":"skiff.dev/v1alpha1"}`)
	f.Add(`{"a":{"kind":"x"},"Kind":"Y","apiversion":"v1"}`)
	f.Add(`{"s":"\\\"","kind":"Z","apiVersion":"g/v"}`)
	f.Fuzz(func(t *testing.T, data string) {
		if encodingjson.Valid([]byte(data)) {
			kindMetaAgrees(t, data)
		}
	})
}

// BenchmarkStorageRecall is the two decodes of an Instance the etcd store
// has just written (the store's, from the bytes written, and the watch
// cache's, from etcd's copy): from the bytes, and recalled.
func BenchmarkStorageRecall(b *testing.B) {
	sch, err := newSchemes()
	if err != nil {
		b.Fatal(err)
	}
	base := storageCodec(sch)
	inst := storedForms(b, base)[0].(*skiffv1alpha1.Instance)
	for _, c := range []struct {
		name  string
		codec runtime.Codec
	}{{"decode", base}, {"recall", newRecallingCodec(base, sch.full)}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				// Each write a new version, as a store's writes are.
				n++
				inst.Status.Message = strconv.Itoa(n)
				data, err := runtime.Encode(c.codec, inst)
				if err != nil {
					b.Fatal(err)
				}
				if _, _, err := c.codec.Decode(data, nil, &skiffv1alpha1.Instance{}); err != nil {
					b.Fatal(err)
				}
				if _, _, err := c.codec.Decode(bytes.Clone(data), nil, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkKindMeta reads an Instance's kind as the library does, and as
// kindMeta does.
func BenchmarkKindMeta(b *testing.B) {
	data, err := encodingjson.Marshal(runningInstance())
	if err != nil {
		b.Fatal(err)
	}
	for _, m := range []struct {
		name string
		meta json.MetaFactory
	}{{"library", json.DefaultMetaFactory}, {"kindMeta", kindMeta{}}} {
		b.Run(m.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.meta.Interpret(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
