package apiserver

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/endpoints/handlers"
	"k8s.io/apiserver/pkg/endpoints/metrics"
	"k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
	smdtyped "sigs.k8s.io/structured-merge-diff/v6/typed"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// unrecordedCreates serves the two creates whose managed-fields record
// nothing keeps: a Workload's Instances (a controller's, stored without
// the record: dropControllersManagedFields) and Bindings (never stored).
// The library's create handler works the record out before the store is
// asked, by walking the whole object against its schema twice: 8 % of the
// control plane's CPU in a burst of binds at 5,000 nodes
// (docs/performance.md, step 19). These routes are the library's own
// create handlers, with the same scope as the ones it installs, but a
// field manager whose type converter hands an Instance with a controller
// (and every Binding) over as an empty object: nothing changed, nothing
// recorded. Everything else about the request (decoding, admission,
// audit, the store, the reply, the request metrics) is the library's.
//
// Only requests the record would be dropped for come here: a body that
// names managedFields (a client setting them itself, which an apply entry
// among them would keep) goes the library's way.
type unrecordedCreates struct {
	instances, bindings http.Handler
	maxBody             int64
	// deps are the parts they were made of, and skipped counts the
	// objects handed over empty (both for tests).
	deps    unrecordedDeps
	skipped atomic.Int64
}

// route is the handler for r if r is one of the two creates and its body
// does not name managedFields, else nil; the body is read to see, and put
// back either way.
func (u *unrecordedCreates) route(r *http.Request) http.Handler {
	if r.Method != http.MethodPost {
		return nil
	}
	info, ok := request.RequestInfoFrom(r.Context())
	if !ok || !info.IsResourceRequest || info.APIGroup != skiffv1alpha1.GroupName || info.APIVersion != skiffv1alpha1.SchemeGroupVersion.Version ||
		info.Resource != "instances" || info.Namespace == "" {
		return nil
	}
	var h http.Handler
	switch {
	case info.Subresource == "" && info.Name == "":
		h = u.instances
	case info.Subresource == "binding" && info.Name != "":
		h = u.bindings
	default:
		return nil
	}
	if media, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || media != runtime.ContentTypeJSON {
		return nil
	}
	orig := r.Body
	body, err := io.ReadAll(io.LimitReader(orig, u.maxBody+1))
	// What was read, then the rest (a body over the limit, an error):
	// the library's handler reads it as it would have.
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(body), orig), orig}
	if err != nil || int64(len(body)) > u.maxBody || bytes.Contains(body, []byte("managedFields")) {
		return nil
	}
	return h
}

// withUnrecordedCreates sends the two creates to their routes once they
// are installed.
func withUnrecordedCreates(next http.Handler, routes *atomic.Pointer[unrecordedCreates]) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u := routes.Load(); u != nil {
			if h := u.route(r); h != nil {
				h.ServeHTTP(w, r)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// emptied hands the objects drop says nothing keeps the record of over
// as an empty object of their kind.
type emptied struct {
	managedfields.TypeConverter
	empty *smdtyped.TypedValue
	drop  func(runtime.Object) bool
	count *atomic.Int64
}

func (e emptied) ObjectToTyped(obj runtime.Object, opts ...smdtyped.ValidationOptions) (*smdtyped.TypedValue, error) {
	if e.drop(obj) {
		e.count.Add(1)
		return e.empty, nil
	}
	return e.TypeConverter.ObjectToTyped(obj, opts...)
}

// unrecordedDeps is what the routes' scopes are made of: what the
// library's installer makes its own of, from the same parts.
type unrecordedDeps struct {
	info       *genericapiserver.APIGroupInfo
	storage    map[string]rest.Storage
	authorizer authorizer.Authorizer
	admit      admission.Interface
	resources  runtime.EquivalentResourceMapper
	maxBody    int64
}

func newUnrecordedCreates(d unrecordedDeps) (*unrecordedCreates, error) {
	tc, err := managedfields.NewTypeConverter(d.info.StaticOpenAPISpec, false)
	if err != nil {
		return nil, fmt.Errorf("unrecorded creates: %w", err)
	}
	u := &unrecordedCreates{maxBody: d.maxBody, deps: d}
	instances, ok := d.storage["instances"].(rest.Creater)
	if !ok {
		return nil, fmt.Errorf("unrecorded creates: the instances store does not create")
	}
	binding, ok := d.storage["instances/binding"].(rest.NamedCreater)
	if !ok {
		return nil, fmt.Errorf("unrecorded creates: the instances/binding store does not create")
	}
	controlled := func(obj runtime.Object) bool {
		i, ok := obj.(*skiffv1alpha1.Instance)
		return ok && controllerMade(i)
	}
	always := func(runtime.Object) bool { return true }
	instScope, err := d.scope(tc, "instances", "", d.storage["instances"], &skiffv1alpha1.Instance{}, controlled, &u.skipped)
	if err != nil {
		return nil, err
	}
	bindScope, err := d.scope(tc, "instances", "binding", d.storage["instances/binding"], &skiffv1alpha1.Binding{}, always, &u.skipped)
	if err != nil {
		return nil, err
	}
	// A handler per request, as the library's routes make them: its
	// create handler wraps the admission it is given in place.
	u.instances = d.instrument("instances", "", func(w http.ResponseWriter, r *http.Request) {
		handlers.CreateResource(instances, instScope, d.admit)(w, r)
	})
	u.bindings = d.instrument("instances", "binding", func(w http.ResponseWriter, r *http.Request) {
		handlers.CreateNamedResource(binding, bindScope, d.admit)(w, r)
	})
	return u, nil
}

// scope is the request scope the installer makes for a namespaced kind's
// create (installer.go's registerResourceHandlers), with the field
// manager's type converter emptying what drop says.
func (d unrecordedDeps) scope(tc managedfields.TypeConverter, resource, subresource string, storage rest.Storage, obj runtime.Object, drop func(runtime.Object) bool, count *atomic.Int64) (*handlers.RequestScope, error) {
	gv := d.info.PrioritizedVersions[0]
	sch := d.info.Scheme
	kinds, _, err := sch.ObjectKinds(obj)
	if err != nil {
		return nil, fmt.Errorf("unrecorded creates: %w", err)
	}
	kind := gv.WithKind(kinds[0].Kind)
	obj.GetObjectKind().SetGroupVersionKind(kind)
	empty, err := tc.ObjectToTyped(obj)
	if err != nil {
		return nil, fmt.Errorf("unrecorded creates: an empty %s: %w", kind.Kind, err)
	}
	var reset map[fieldpath.APIVersion]fieldpath.Filter
	if r, ok := storage.(rest.ResetFieldsStrategy); ok {
		reset = fieldpath.NewExcludeFilterSetMap(r.GetResetFields())
	}
	hub := schema.GroupVersion{Group: gv.Group, Version: runtime.APIVersionInternal}
	fm, err := managedfields.NewDefaultFieldManager(emptied{TypeConverter: tc, empty: empty, drop: drop, count: count},
		runtime.UnsafeObjectConvertor(sch), sch, sch, kind, hub, subresource, reset)
	if err != nil {
		return nil, fmt.Errorf("unrecorded creates: %w", err)
	}
	tables, _ := storage.(rest.TableConvertor)
	return &handlers.RequestScope{
		Namer:                    handlers.ContextBasedNaming{Namer: runtime.Namer(meta.NewAccessor()), ClusterScoped: false},
		Serializer:               d.info.NegotiatedSerializer,
		ParameterCodec:           d.info.ParameterCodec,
		Creater:                  sch,
		Convertor:                sch,
		Defaulter:                sch,
		Typer:                    sch,
		UnsafeConvertor:          runtime.UnsafeObjectConvertor(sch),
		Authorizer:               d.authorizer,
		EquivalentResourceMapper: d.resources,
		TableConvertor:           tables,
		FieldManager:             fm,
		Resource:                 gv.WithResource(resource),
		Subresource:              subresource,
		Kind:                     kind,
		HubGroupVersion:          hub,
		MetaGroupVersion:         metav1.SchemeGroupVersion,
		MaxRequestBodyBytes:      d.maxBody,
	}, nil
}

// instrument counts the requests as the installer's routes do
// (apiserver_request_total and the latencies).
func (d unrecordedDeps) instrument(resource, subresource string, h http.HandlerFunc) http.Handler {
	gv := d.info.PrioritizedVersions[0]
	return metrics.InstrumentHandlerFunc(request.MethodPost, gv.Group, gv.Version, resource, subresource, "resource", metrics.APIServerComponent, false, "", h)
}
