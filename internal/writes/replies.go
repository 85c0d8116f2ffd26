package writes

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
)

// metadataAccept asks the API server to answer a write with the written
// object's metadata (a PartialObjectMetadata), as it answers lists and
// watches that ask; a server that cannot sends the whole object, whose
// metadata is read the same way.
const metadataAccept = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1, application/json"

// MetadataReplies wraps c so that its creates and status updates of typed
// objects take back only the written object's metadata: the server encodes
// a few hundred bytes instead of the whole object and the writer decodes
// them, for writers that never read what a write returns but its metadata
// (a controller's creates, an agent's status writes). The object passed
// is updated in place, as by controller-runtime's client, but from the
// reply: its metadata becomes the server's (resource version, UID, managed
// fields, ...) and the rest stays as sent, without what the server derives
// on the write (an Instance's QoS class on create): a writer that writes
// again from the object must read it first. Writes with options, of
// unstructured objects, and every other call go to c.
func MetadataReplies(c client.Client, cfg *rest.Config, httpClient *http.Client) client.Client {
	return &metadataReplies{Client: c, cfg: cfg, http: httpClient, rest: map[schema.GroupVersionKind]rest.Interface{}}
}

type metadataReplies struct {
	client.Client
	cfg  *rest.Config
	http *http.Client

	mu   sync.Mutex
	rest map[schema.GroupVersionKind]rest.Interface
}

func (m *metadataReplies) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	if len(opts) > 0 || !m.typed(obj) {
		return m.Client.Create(ctx, obj, opts...)
	}
	return m.write(ctx, http.MethodPost, obj, "")
}

func (m *metadataReplies) Status() client.SubResourceWriter {
	return &metadataStatus{SubResourceWriter: m.Client.Status(), replies: m}
}

// metadataStatus is the status writer of MetadataReplies.
type metadataStatus struct {
	client.SubResourceWriter
	replies *metadataReplies
}

func (s *metadataStatus) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	if len(opts) > 0 || !s.replies.typed(obj) {
		return s.SubResourceWriter.Update(ctx, obj, opts...)
	}
	return s.replies.write(ctx, http.MethodPut, obj, "status")
}

// typed reports whether obj is a Go type of the client's scheme (not
// unstructured, not metadata only).
func (m *metadataReplies) typed(obj client.Object) bool {
	switch obj.(type) {
	case runtime.Unstructured, *metav1.PartialObjectMetadata:
		return false
	}
	return true
}

// write sends obj with method (POST to its collection, PUT to the object's
// subresource) and takes the metadata of the reply into obj.
func (m *metadataReplies) write(ctx context.Context, method string, obj client.Object, subresource string) error {
	gvk, err := apiutil.GVKForObject(obj, m.Scheme())
	if err != nil {
		return err
	}
	mapping, err := m.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return err
	}
	rc, err := m.restFor(gvk)
	if err != nil {
		return err
	}
	req := rc.Verb(method).Resource(mapping.Resource.Resource).
		NamespaceIfScoped(obj.GetNamespace(), mapping.Scope.Name() == meta.RESTScopeNameNamespace).
		SetHeader("Accept", metadataAccept).Body(obj)
	if method != http.MethodPost {
		req = req.Name(obj.GetName()).SubResource(subresource)
	}
	raw, err := req.Do(ctx).Raw()
	if err != nil {
		// The server's refusal, whatever the client's scheme can decode.
		var status metav1.Status
		if json.Unmarshal(raw, &status) == nil && status.Status == metav1.StatusFailure {
			return &apierrors.StatusError{ErrStatus: status}
		}
		return err
	}
	var reply metav1.PartialObjectMetadata
	if err := json.Unmarshal(raw, &reply); err != nil {
		return fmt.Errorf("%s reply of %s %s/%s: %w", method, gvk.Kind, obj.GetNamespace(), obj.GetName(), err)
	}
	setMeta(obj, &reply.ObjectMeta)
	return nil
}

// restFor is the REST client of gvk's group version, made on first use.
func (m *metadataReplies) restFor(gvk schema.GroupVersionKind) (rest.Interface, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if rc, ok := m.rest[gvk]; ok {
		return rc, nil
	}
	rc, err := apiutil.RESTClientForGVK(gvk, true, false, m.cfg, serializer.NewCodecFactory(m.Scheme()), m.http)
	if err != nil {
		return nil, fmt.Errorf("client for %s: %w", gvk, err)
	}
	m.rest[gvk] = rc
	return rc, nil
}

// setMeta makes obj's metadata from's.
func setMeta(obj metav1.Object, from *metav1.ObjectMeta) {
	obj.SetName(from.Name)
	obj.SetGenerateName(from.GenerateName)
	obj.SetNamespace(from.Namespace)
	obj.SetUID(from.UID)
	obj.SetResourceVersion(from.ResourceVersion)
	obj.SetGeneration(from.Generation)
	obj.SetCreationTimestamp(from.CreationTimestamp)
	obj.SetDeletionTimestamp(from.DeletionTimestamp)
	obj.SetDeletionGracePeriodSeconds(from.DeletionGracePeriodSeconds)
	obj.SetLabels(from.Labels)
	obj.SetAnnotations(from.Annotations)
	obj.SetOwnerReferences(from.OwnerReferences)
	obj.SetFinalizers(from.Finalizers)
	obj.SetManagedFields(from.ManagedFields)
}
