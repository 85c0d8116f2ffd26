package apiserver

import (
	"context"
	"crypto/tls"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/registry/rest"
)

// Kind is everything the generic registry needs to serve one resource.
// Each served resource is one Kind value in the table in kinds.go.
type Kind struct {
	// GVK is the served group, version and kind.
	GVK schema.GroupVersionKind
	// Plural and Singular are the resource names in URLs and kubectl.
	Plural, Singular string
	// ShortNames are kubectl abbreviations (wl, inst, no).
	ShortNames []string
	// Categories group resources for `kubectl get <category>`.
	Categories []string
	// Namespaced is the scope.
	Namespaced bool
	// Namespaces marks the kind that is the namespaces themselves: it is
	// built first, every namespaced kind checks on create that its
	// namespace exists, and deleting one is refused while it holds objects
	// of a kind that KeepsNamespace.
	Namespaces bool
	// KeepsNamespace: objects of this kind keep their namespace from being
	// deleted (skiff does not cascade). Events, which expire, do not.
	KeepsNamespace bool
	// New and NewList allocate the object and list types.
	New, NewList func() runtime.Object

	// Status adds the status subresource. The object's Spec and Status
	// struct fields are then split: the main resource ignores status
	// changes, the status subresource ignores spec changes.
	Status bool
	// Scale, when set, adds the autoscaling/v1 scale subresource.
	Scale *ScaleAccess
	// Binding adds the binding subresource (Instances only).
	Binding bool
	// Subresources are further subresources by name ("log"), made once
	// every kind's main store exists (they may read other kinds' stores).
	Subresources map[string]func(env SubresourceEnv) rest.Storage
	// TTL, when non-zero, expires objects that long after their last write.
	TTL time.Duration

	// Columns and Row make the kubectl table. Columns of priority 1 show
	// only with -o wide. NAME is added first; AGE comes from Row.
	Columns []metav1.TableColumnDefinition
	Row     func(obj runtime.Object) []interface{}
	// FieldLabels are the field selectors beyond metadata.name and
	// metadata.namespace; Fields returns their values. The scheme accepts
	// exactly these (for skiff's own kinds, apis/skiff registers them).
	FieldLabels []string
	Fields      func(obj runtime.Object) fields.Set
	// IndexField, when set, is one of FieldLabels that the watch cache
	// indexes, as Kubernetes does for a Pod's spec.nodeName: a watch or
	// list that selects one value of it (spec.nodeName=NODE, what every
	// node agent asks for) is sent the events of the objects that have
	// that value before or after a change, and lists only those, instead
	// of every watch looking at every event and every list at every
	// object.
	IndexField string

	// PrepareForCreate runs after the generic preparation (status reset,
	// generation 1), e.g. to compute an Instance's QoS class.
	PrepareForCreate func(obj runtime.Object)
	// PrepareForUpdate runs on every update of the main resource, after
	// the generic preparation (e.g. to fold a Secret's stringData in).
	PrepareForUpdate func(obj, old runtime.Object)
	// Validate, ValidateUpdate and ValidateStatusUpdate return errors with
	// exact field paths. Nil means metadata checks only.
	Validate             func(obj runtime.Object) field.ErrorList
	ValidateUpdate       func(obj, old runtime.Object) field.ErrorList
	ValidateStatusUpdate func(obj, old runtime.Object) field.ErrorList
	// Protected names cannot be deleted (e.g. the default namespace).
	Protected []string
	// Redact, when set, returns what the caller in ctx may see of an
	// object read through get, list or watch: obj itself, or a copy with
	// fields withheld. It must not change obj (it may be the watch cache's).
	Redact func(ctx context.Context, obj runtime.Object) runtime.Object
}

// SubresourceEnv is what a subresource of Kind.Subresources is made from.
type SubresourceEnv struct {
	// Main is the kind's own store.
	Main *REST
	// Store returns another kind's store (nil if it is not served).
	Store func(schema.GroupResource) *REST
	// AgentCert is the API server's client certificate towards agents.
	AgentCert func(*tls.CertificateRequestInfo) (*tls.Certificate, error)
}

// GroupResource is the kind's resource in its group.
func (k *Kind) GroupResource() schema.GroupResource {
	return schema.GroupResource{Group: k.GVK.Group, Resource: k.Plural}
}

// ScaleAccess reads and writes a kind's replica counts for /scale.
type ScaleAccess struct {
	// SpecReplicasPath is the path of the desired replicas, for managed fields.
	SpecReplicasPath []string
	// Get returns desired replicas, observed replicas and the selector.
	Get func(obj runtime.Object) (spec, status int32, selector string, err error)
	// Set changes the desired replicas.
	Set func(obj runtime.Object, replicas int32)
}

// typed adapts a function of one concrete type to runtime.Object.
func typed[T runtime.Object, R any](f func(T) R) func(runtime.Object) R {
	return func(obj runtime.Object) R { return f(obj.(T)) }
}

// typed2 adapts a function of two objects of one concrete type.
func typed2[T runtime.Object, R any](f func(T, T) R) func(runtime.Object, runtime.Object) R {
	return func(obj, old runtime.Object) R { return f(obj.(T), old.(T)) }
}

// mutate adapts an in-place change of one concrete type.
func mutate[T runtime.Object](f func(T)) func(runtime.Object) {
	return func(obj runtime.Object) { f(obj.(T)) }
}
