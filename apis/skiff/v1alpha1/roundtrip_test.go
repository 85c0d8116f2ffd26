package v1alpha1

import (
	"bytes"
	"math/rand"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/apitesting/fuzzer"
	"k8s.io/apimachinery/pkg/api/apitesting/roundtrip"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metafuzzer "k8s.io/apimachinery/pkg/apis/meta/fuzzer"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/randfill"
)

// fuzzIterations is how many random objects of each kind go through the
// JSON round trip.
const fuzzIterations = 200

// roundTripScheme registers the kinds as the apiserver does (the external
// version and the same types as the internal one) but without the
// defaulting funcs: decoding through a codec defaults, and a fuzzed nil
// replicas would come back as 1 and hide a real loss.
func roundTripScheme(t *testing.T) (*runtime.Scheme, serializer.CodecFactory) {
	t.Helper()
	scheme := runtime.NewScheme()
	builder := runtime.NewSchemeBuilder(addKnownTypes, AddInternalToScheme)
	if err := builder.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	return scheme, serializer.NewCodecFactory(scheme)
}

func newFuzzer(t *testing.T, codecs serializer.CodecFactory) *randfill.Filler {
	t.Helper()
	seed := time.Now().UnixNano()
	t.Logf("fuzz seed %d", seed)
	return fuzzer.FuzzerFor(fuzzer.MergeFuzzerFuncs(metafuzzer.Funcs, skiffFuzzerFuncs), rand.NewSource(seed), codecs)
}

// skiffFuzzerFuncs fill pointers to types that fill themselves. randfill
// hands such a pointer field to the type's RandFill while it is still nil,
// and RandFill of a nil receiver does nothing: without these funcs
// maxSurge, maxUnavailable and startTime would never be set.
func skiffFuzzerFuncs(_ serializer.CodecFactory) []interface{} {
	return []interface{}{
		func(p **intstr.IntOrString, c randfill.Continue) { *p = fillOrNil[intstr.IntOrString](c) },
		func(p **metav1.Time, c randfill.Continue) { *p = fillOrNil[metav1.Time](c) },
	}
}

func fillOrNil[T any](c randfill.Continue) *T {
	if c.Bool() {
		return nil
	}
	v := new(T)
	c.Fill(v)
	return v
}

// TestRoundTripAPITesting runs the Kubernetes-standard round trip over every
// kind of the group, in the internal and the external version.
func TestRoundTripAPITesting(t *testing.T) {
	scheme, codecs := roundTripScheme(t)
	f := newFuzzer(t, codecs)
	for _, gv := range []schema.GroupVersion{InternalGroupVersion, SchemeGroupVersion} {
		for _, obj := range knownTypes() {
			gvk := gv.WithKind(reflect.TypeOf(obj).Elem().Name())
			t.Run(gvk.String(), func(t *testing.T) {
				roundtrip.RoundTripSpecificKindWithoutProtobuf(t, gvk, scheme, codecs, f, nil)
			})
		}
	}
}

// TestRoundTripJSON sends fuzzed objects of every kind through the codec the
// apiserver uses, object -> JSON -> object and JSON -> object -> JSON, and
// checks that the fuzzer set every field at least once, so that a field the
// JSON form drops (a "-" tag, a lost inline) cannot pass unnoticed.
func TestRoundTripJSON(t *testing.T) {
	scheme, codecs := roundTripScheme(t)
	codec := codecs.LegacyCodec(SchemeGroupVersion)
	strict := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme, json.SerializerOptions{Strict: true})
	f := newFuzzer(t, codecs).NilChance(0.2).NumElements(1, 2)
	for _, proto := range knownTypes() {
		typ := reflect.TypeOf(proto).Elem()
		t.Run(typ.Name(), func(t *testing.T) {
			coverage := newFieldCoverage(typ)
			for i := 0; i < fuzzIterations && !t.Failed(); i++ {
				obj := reflect.New(typ).Interface().(runtime.Object)
				f.Fill(obj)
				coverage.record(obj)
				data := encode(t, codec, obj)
				decoded := decodeAndCompare(t, codec, data, obj)
				checkStrict(t, strict, data)
				if again := encode(t, codec, decoded); !bytes.Equal(data, again) {
					t.Errorf("JSON -> object -> JSON changed the document:\n first: %s\nsecond: %s", data, again)
				}
			}
			coverage.check(t)
		})
	}
}

func encode(t *testing.T, codec runtime.Codec, obj runtime.Object) []byte {
	t.Helper()
	// Encode a copy: encoding sets the kind on the object it is given.
	data, err := runtime.Encode(codec, obj.DeepCopyObject())
	if err != nil {
		t.Fatalf("encode %T: %v", obj, err)
	}
	return data
}

func decodeAndCompare(t *testing.T, codec runtime.Codec, data []byte, want runtime.Object) runtime.Object {
	t.Helper()
	got, err := runtime.Decode(codec, data)
	if err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
	if !apiequality.Semantic.DeepEqual(want, got) {
		t.Errorf("object -> JSON -> object lost data (-want +got):\n%s\nJSON: %s", cmp.Diff(want, got), data)
	}
	return got
}

// checkStrict decodes strictly: two fields with one JSON name (say an
// inlined struct that grew a nodeName) would show up as a duplicate field.
func checkStrict(t *testing.T, strict runtime.Decoder, data []byte) {
	t.Helper()
	if _, _, err := strict.Decode(data, nil, nil); err != nil {
		t.Errorf("strict decode: %v\nJSON: %s", err, data)
	}
}

// fieldCoverage tracks which fields of a kind were ever non-zero. Types
// from other packages (metadata, quantities, times, selectors) count as
// single fields: their own tests cover their insides.
type fieldCoverage struct {
	pkgPath string
	set     map[string]bool
}

func newFieldCoverage(typ reflect.Type) *fieldCoverage {
	c := &fieldCoverage{pkgPath: typ.PkgPath(), set: map[string]bool{}}
	c.walkType(typ, typ.Name())
	return c
}

func (c *fieldCoverage) isLeaf(typ reflect.Type) bool {
	return typ.Kind() != reflect.Struct || typ.PkgPath() != c.pkgPath
}

// walkType lists every field path of typ as not yet set.
func (c *fieldCoverage) walkType(typ reflect.Type, path string) {
	switch {
	case typ.Kind() == reflect.Pointer:
		c.walkType(typ.Elem(), path)
	case typ.Kind() == reflect.Slice:
		c.walkType(typ.Elem(), path+"[]")
	case c.isLeaf(typ):
		c.set[path] = false
	default:
		for i := 0; i < typ.NumField(); i++ {
			if f := typ.Field(i); isCoveredField(f) {
				c.walkType(f.Type, path+"."+f.Name)
			}
		}
	}
}

// isCoveredField skips TypeMeta, which the fuzzer leaves empty on purpose:
// the codec sets it.
func isCoveredField(f reflect.StructField) bool {
	return f.IsExported() && f.Type != reflect.TypeOf(metav1.TypeMeta{})
}

func (c *fieldCoverage) record(obj runtime.Object) {
	v := reflect.ValueOf(obj).Elem()
	c.recordValue(v, v.Type().Name())
}

func (c *fieldCoverage) recordValue(v reflect.Value, path string) {
	switch {
	case v.Kind() == reflect.Pointer:
		if !v.IsNil() {
			c.recordValue(v.Elem(), path)
		}
	case v.Kind() == reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			c.recordValue(v.Index(i), path+"[]")
		}
	case c.isLeaf(v.Type()):
		if !v.IsZero() {
			c.set[path] = true
		}
	default:
		for i := 0; i < v.NumField(); i++ {
			if f := v.Type().Field(i); isCoveredField(f) {
				c.recordValue(v.Field(i), path+"."+f.Name)
			}
		}
	}
}

func (c *fieldCoverage) check(t *testing.T) {
	t.Helper()
	var unset []string
	for path, set := range c.set {
		if !set {
			unset = append(unset, path)
		}
	}
	slices.Sort(unset)
	if len(unset) > 0 {
		t.Errorf("the fuzzer never set %d fields, so their round trip is untested:\n%v", len(unset), unset)
	}
}
