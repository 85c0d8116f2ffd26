package apiserver

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/etcdserver"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"
	openapinamer "k8s.io/apiserver/pkg/endpoints/openapi"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/features"
	"k8s.io/apiserver/pkg/registry/rest"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	genericfilters "k8s.io/apiserver/pkg/server/filters"
	genericoptions "k8s.io/apiserver/pkg/server/options"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/component-base/compatibility"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/apiserver/openapi"
	"skiff.dev/skiff/version"
)

// build wires the generic API server: serving, authentication,
// authorization, storage, audit, OpenAPI, then installs every Kind.
//
// local is the embedded etcd, nil for an external one: the stores call it
// in process (localEtcdStorage).
func (s *Server) build(endpoints []string, local *etcdserver.EtcdServer) (*genericapiserver.GenericAPIServer, func(), error) {
	sch, err := newSchemes()
	if err != nil {
		return nil, nil, err
	}
	cfg := genericapiserver.NewConfig(sch.codecs)
	cfg.EffectiveVersion = compatibility.NewEffectiveVersionFromString(version.KubernetesMinor, "", "")
	cfg.LongRunningFunc = longRunning
	cfg.RequestTimeout = s.cfg.RequestTimeout
	// Discovery tells clients where to reach the server.
	cfg.ExternalAddress = strings.TrimPrefix(s.URL(), "https://")
	if err := s.applyServing(cfg); err != nil {
		return nil, nil, err
	}
	acc, err := s.applyAccess(cfg)
	if err != nil {
		return nil, nil, err
	}
	atRest, err := newAtRest(context.Background(), s.cfg.encryptionConfigPath())
	if err != nil {
		return nil, nil, err
	}
	cfg.ResourceTransformers = atRest
	closeStorage, err := s.applyStorage(cfg, sch, endpoints, local)
	if err != nil {
		return nil, nil, err
	}
	built := false
	defer func() {
		if !built {
			closeStorage()
		}
	}()
	if err := s.applyAudit(cfg); err != nil {
		return nil, nil, err
	}
	namer := openapinamer.NewDefinitionNamer(sch.external)
	cfg.OpenAPIConfig = genericapiserver.DefaultOpenAPIConfig(openapi.GetOpenAPIDefinitions, namer)
	cfg.OpenAPIConfig.Info.Title, cfg.OpenAPIConfig.Info.Version = "skiff", version.Version
	cfg.OpenAPIV3Config = genericapiserver.DefaultOpenAPIV3Config(openapi.GetOpenAPIDefinitions, namer)
	cfg.OpenAPIV3Config.Info.Title, cfg.OpenAPIV3Config.Info.Version = "skiff", version.Version
	// skiff serves /metrics itself, with its own registry next to the library's.
	cfg.EnableMetrics = false

	generic, err := cfg.Complete(nil).New("skiff-apiserver", genericapiserver.NewEmptyDelegate())
	if err != nil {
		return nil, nil, fmt.Errorf("apiserver: %w", err)
	}
	// A stopping server waits this long for the requests in flight (not
	// the whole request timeout: a server whose etcd lost its quorum
	// would wait out every request).
	generic.ShutdownTimeout = min(cfg.RequestTimeout, shutdownDrain)
	closeServing, err := s.installStores(generic, sch, cfg, acc, atRest, endpoints)
	if err != nil {
		return nil, nil, err
	}
	built = true
	return generic, func() { closeServing(); closeStorage() }, nil
}

// installStores installs the stores and what reads them (the in-process reader,
// observability, the access parts, the key rotation endpoint); the
// function it returns closes its etcd client.
func (s *Server) installStores(generic *genericapiserver.GenericAPIServer, sch *schemes, cfg *genericapiserver.Config, acc *access, atRest *atRest, endpoints []string) (func(), error) {
	stores, err := s.install(generic, sch, cfg, map[schema.GroupVersion]map[string]rest.Storage{
		authorizationGV: reviewStorage(cfg.Authorization.Authorizer, acc.rbac),
	})
	if err != nil {
		return nil, err
	}
	s.local.serve(stores)
	etcdClient, err := newEtcdClient(endpoints, s.cfg)
	if err != nil {
		return nil, err
	}
	s.installObservability(generic, stores, etcdClient)
	if err := generic.AddPostStartHook("skiff-bootstrap-namespaces", bootstrapNamespaces(stores.store(namespacesResource))); err != nil {
		etcdClient.Close()
		return nil, err
	}
	if err := s.connectAccess(acc, generic, stores); err != nil {
		etcdClient.Close()
		return nil, err
	}
	rotateKey := atRest.rotateKeyHandler(stores.store(secretsResource), etcdClient, s.cfg.EtcdPrefix+"/secrets/")
	if s.member != nil {
		rotateKey = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "skiff secrets rotate-key: this server is one of a cluster of servers, each holding the encryption keys "+
				"it was given when it joined; a new key made here would be missing on the others, which could then read no Secret "+
				"written with it. Rotating the key of a cluster of servers is not supported yet.", http.StatusConflict)
		})
	}
	generic.Handler.NonGoRestfulMux.Handle(RotateKeyPath, rotateKey)
	return func() { etcdClient.Close() }, nil
}

// longRunning tells the requests that stream for as long as the client
// wants (watches, logs, and the exec and attach to come), as
// kube-apiserver does: they are not cut by the request timeout (60 s) and
// do not hold one of the in-flight slots that short requests share.
var longRunning = genericfilters.BasicLongRunningRequestCheck(sets.NewString("watch"), sets.NewString("log", "exec", "attach", "portforward"))

// shutdownDrain bounds how long a stopping server drains its requests.
const shutdownDrain = 10 * time.Second

func (s *Server) applyServing(cfg *genericapiserver.Config) error {
	serving := genericoptions.NewSecureServingOptions().WithLoopback()
	serving.Listener = s.listener
	serving.ServerCert.CertKey.CertFile = s.dir.file(servingCertFile)
	serving.ServerCert.CertKey.KeyFile = s.dir.file(servingKeyFile)
	if err := serving.ApplyTo(&cfg.SecureServing, &cfg.LoopbackClientConfig); err != nil {
		return fmt.Errorf("serving: %w", err)
	}
	// Any ClientCA makes the server ask for client certificates; an empty
	// bundle means no chain check, so the authenticator trusts by key.
	cfg.SecureServing.ClientCA = noCA{}
	return nil
}

// applyStorage configures the stores; the function it returns stops what
// they share.
func (s *Server) applyStorage(cfg *genericapiserver.Config, sch *schemes, endpoints []string, local *etcdserver.EtcdServer) (func(), error) {
	if err := withoutCacheSnapshots(); err != nil {
		return nil, err
	}
	codec := newRecallingCodec(storageCodec(sch), sch.full)
	etcd := genericoptions.NewEtcdOptions(storagebackend.NewDefaultConfig(s.cfg.EtcdPrefix, codec))
	etcd.StorageConfig.Transport.ServerList = endpoints
	etcd.StorageConfig.Transport.TrustedCAFile = s.cfg.EtcdCAFile
	etcd.StorageConfig.Transport.CertFile = s.cfg.EtcdCertFile
	etcd.StorageConfig.Transport.KeyFile = s.cfg.EtcdKeyFile
	if err := etcd.ApplyTo(cfg); err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	if local == nil {
		return func() {}, nil
	}
	clientCfg, err := etcdClientConfig(endpoints, s.cfg)
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	stores, err := newLocalEtcdStorage(local, clientCfg, s.member == nil)
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	cfg.RESTOptionsGetter = stores.options(cfg.RESTOptionsGetter)
	return stores.Close, nil
}

func (s *Server) applyAudit(cfg *genericapiserver.Config) error {
	if !s.cfg.AuditLog {
		return nil
	}
	audit := genericoptions.NewAuditOptions()
	audit.PolicyFile = s.dir.file(auditPolicyFile)
	audit.LogOptions.Path = s.dir.file(auditLogFile)
	audit.LogOptions.BatchOptions.Mode = genericoptions.ModeBatch
	if err := audit.ApplyTo(cfg); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if cfg.AuditBackend != nil {
		cfg.AuditBackend = &quietAudit{Backend: cfg.AuditBackend}
	}
	return nil
}

// servedGroupVersions are the group versions of the Kinds, each once.
func servedGroupVersions() []schema.GroupVersion {
	var gvs []schema.GroupVersion
	seen := map[schema.GroupVersion]bool{}
	for _, k := range Kinds() {
		if gv := k.GVK.GroupVersion(); !seen[gv] {
			seen[gv] = true
			gvs = append(gvs, gv)
		}
	}
	return gvs
}

// installed are every kind's main store.
type installed struct {
	byKind map[*Kind]*REST
}

// store returns the main store of a served resource, nil if none.
func (in *installed) store(gr schema.GroupResource) *REST {
	for k, r := range in.byKind {
		if k.GroupResource() == gr {
			return r
		}
	}
	return nil
}

// install builds every Kind's storage and installs the API groups: the
// namespaces first (every namespaced kind checks them on create), then the
// other kinds, then the subresources that read other kinds' stores.
func (s *Server) install(generic *genericapiserver.GenericAPIServer, sch *schemes, cfg *genericapiserver.Config, extra map[schema.GroupVersion]map[string]rest.Storage) (*installed, error) {
	kinds := Kinds()
	sort.SliceStable(kinds, func(i, j int) bool { return kinds[i].Namespaces && !kinds[j].Namespaces })
	out := &installed{byKind: map[*Kind]*REST{}}
	b := &storeBuilder{scheme: sch.full, optsGetter: cfg.RESTOptionsGetter}
	byGV := map[schema.GroupVersion]map[string]rest.Storage{}
	for gv, storage := range extra {
		byGV[gv] = storage
	}
	var namespaces *namespaceREST
	for _, k := range kinds {
		storage, main, err := b.build(k)
		if err != nil {
			return nil, err
		}
		out.byKind[k] = main
		switch {
		case k.Namespaces:
			b.namespaceExists = namespaceChecker{store: main}.exists
			namespaces = &namespaceREST{REST: main}
			storage[k.Plural] = namespaces
		case k.KeepsNamespace && namespaces != nil:
			namespaces.contents = append(namespaces.contents, main)
		}
		gv := k.GVK.GroupVersion()
		if byGV[gv] == nil {
			byGV[gv] = map[string]rest.Storage{}
		}
		for path, st := range storage {
			byGV[gv][path] = st
		}
	}
	for k, main := range out.byKind {
		env := SubresourceEnv{Main: main, Store: out.store, AgentCert: s.agentCert.GetClientCertificate}
		for name, make := range k.Subresources {
			byGV[k.GVK.GroupVersion()][k.Plural+"/"+name] = make(env)
		}
	}
	return out, s.installGroups(generic, sch, cfg, byGV)
}

func (s *Server) installGroups(generic *genericapiserver.GenericAPIServer, sch *schemes, cfg *genericapiserver.Config, byGV map[schema.GroupVersion]map[string]rest.Storage) error {
	gvs := make([]schema.GroupVersion, 0, len(byGV))
	for gv := range byGV {
		gvs = append(gvs, gv)
	}
	sort.Slice(gvs, func(i, j int) bool { return gvs[i].String() < gvs[j].String() })
	for _, gv := range gvs {
		info := genericapiserver.NewDefaultAPIGroupInfo(gv.Group, sch.full, metav1.ParameterCodec, sch.codecs)
		if gv.Group == skiffv1alpha1.GroupName {
			// Its options kinds (InstanceLogOptions) decode from queries
			// through conversions in the full scheme.
			info.ParameterCodec = runtime.NewParameterCodec(sch.full)
			info.NegotiatedSerializer = newSkiffSerializer(info.NegotiatedSerializer, sch.full)
		}
		info.PrioritizedVersions = []schema.GroupVersion{gv}
		info.VersionedResourcesStorageMap[gv.Version] = byGV[gv]
		var err error
		if gv.Group == "" {
			err = generic.InstallLegacyAPIGroup(genericapiserver.DefaultLegacyAPIPrefix, &info)
		} else {
			err = generic.InstallAPIGroup(&info)
		}
		if err != nil {
			return fmt.Errorf("install %s: %w", gv, err)
		}
		if gv == skiffv1alpha1.SchemeGroupVersion {
			u, err := newUnrecordedCreates(unrecordedDeps{info: &info, storage: byGV[gv], authorizer: cfg.Authorization.Authorizer,
				admit: cfg.AdmissionControl, resources: generic.EquivalentResourceRegistry, maxBody: cfg.MaxRequestBodyBytes})
			if err != nil {
				return err
			}
			s.unrecorded.Store(u)
		}
	}
	return nil
}

// bootstrapNamespaces creates the namespaces that always exist.
func bootstrapNamespaces(store *REST) genericapiserver.PostStartHookFunc {
	return func(hookCtx genericapiserver.PostStartHookContext) error {
		ctx := genericapirequest.WithNamespace(hookCtx, metav1.NamespaceNone)
		for _, name := range []string{DefaultNamespace, SystemNamespace, skiffv1alpha1.NodeLeaseNamespace} {
			err := poll(ctx, func() error {
				ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
				_, err := store.Create(ctx, ns, nil, &metav1.CreateOptions{})
				if apierrors.IsAlreadyExists(err) {
					return nil
				}
				return err
			})
			if err != nil {
				return fmt.Errorf("create namespace %q: %w", name, err)
			}
		}
		return nil
	}
}

func newEtcdClient(endpoints []string, cfg Config) (*clientv3.Client, error) {
	cc, err := etcdClientConfig(endpoints, cfg)
	if err != nil {
		return nil, err
	}
	c, err := clientv3.New(cc)
	if err != nil {
		return nil, fmt.Errorf("etcd client %v: %w", endpoints, err)
	}
	return c, nil
}

// etcdClientConfig is how skiff's own clients reach etcd at endpoints
// (with cfg's client certificate for an external etcd).
func etcdClientConfig(endpoints []string, cfg Config) (clientv3.Config, error) {
	tlsCfg, err := etcdTLS(cfg)
	if err != nil {
		return clientv3.Config{}, err
	}
	return clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, TLS: tlsCfg}, nil
}

// noCA is an empty client CA bundle: see applyServing.
type noCA struct{}

var _ dynamiccertificates.CAContentProvider = noCA{}

func (noCA) Name() string                              { return "skiff-ed25519-keys" }
func (noCA) CurrentCABundleContent() []byte            { return nil }
func (noCA) VerifyOptions() (x509.VerifyOptions, bool) { return x509.VerifyOptions{}, false }
func (noCA) AddListener(dynamiccertificates.Listener)  {}

// withoutLoopbackCompression drops Accept-Encoding from loopback clients:
// gzip of a large list costs more CPU than it saves on a local socket.
func withoutLoopbackCompression(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
				r.Header.Del("Accept-Encoding")
			}
		}
		next.ServeHTTP(w, r)
	})
}

// withoutCacheSnapshots turns off the watch cache's snapshots
// (ListFromCacheSnapshot): a copy-on-write index of the whole cache kept for
// each change of the last 75 s, so that the later pages of a paginated list
// could come from the cache. Through a burst of writes they held about a
// tenth of the server's memory (130 MB at 10,000 Instances,
// docs/performance.md); without them a list's first page still comes from
// the cache and its later pages from etcd, as in Kubernetes before 1.33. The
// gate is the library's own, one for the process: every server sets it the
// same way.
func withoutCacheSnapshots() error {
	if err := utilfeature.DefaultMutableFeatureGate.SetFromMap(map[string]bool{
		string(features.ListFromCacheSnapshot): false,
	}); err != nil {
		return fmt.Errorf("watch cache snapshots: %w", err)
	}
	return nil
}
