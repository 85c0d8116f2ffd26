package apiserver

import (
	"context"
	"fmt"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/client/pkg/v3/logutil"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/kubernetes"
	"go.etcd.io/etcd/server/v3/etcdserver"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3rpc"
	"go.etcd.io/etcd/server/v3/proxy/grpcproxy/adapter"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	genericfeatures "k8s.io/apiserver/pkg/features"
	"k8s.io/apiserver/pkg/registry/generic"
	"k8s.io/apiserver/pkg/storage"
	cacherstorage "k8s.io/apiserver/pkg/storage/cacher"
	"k8s.io/apiserver/pkg/storage/etcd3"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/apiserver/pkg/storage/storagebackend/factory"
	"k8s.io/apiserver/pkg/storage/value/encrypt/identity"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/client-go/tools/cache"
)

// localEtcdStorage builds the storage of a server whose etcd is embedded.
// It builds what the library builds for each resource (an etcd3 store
// behind a watch cache) with one difference: the store's writes reach
// etcd by function call, as etcd's own in-process client does, not as
// gRPC requests over the socket. That drops, for every write, the
// protobuf encoding on both sides, the HTTP/2 framing, two socket
// syscalls and both sides' gRPC interceptors: most of the tenth of the
// control plane's CPU gRPC took through a burst of writes
// (docs/performance.md).
//
// Reads and leases stay gRPC over the socket, each resource with its own
// client as in the library (writingKV says why reads do). So do the
// watches of a member of a cluster of servers: the library's watches ask
// for a leader, which only etcd's gRPC stream interceptor enforces, so a
// member cut off from its cluster still ends them and its watch caches
// start over once a leader is back. A server's own etcd has no cluster to
// be cut off from (its peer endpoint is a socket no other server can
// reach): it is its own leader while it runs, and its watch events reach
// the watch caches by function call too (lone), with no protobuf
// encoding and decoding of every event (each with its previous value).
type localEtcdStorage struct {
	// kv is the etcd server's KV service, called in process.
	kv pb.KVClient
	// watches, for a server's own etcd, is its watch service, called in
	// process; nil for a member of a cluster.
	watches pb.WatchServer
	// dial opens a gRPC client of the etcd, for a resource's reads, leases
	// and (a member's) watches, and for the compactor.
	dial func() (*clientv3.Client, error)

	mu sync.Mutex
	// compactor compacts etcd's history for every resource, started
	// with the first store; compactClient is its own client.
	compactor     compactor
	compactClient *clientv3.Client
}

// compactor is what the library's etcd3 compactor does for us.
type compactor interface {
	etcd3.Compactor
	Stop()
}

// newLocalEtcdStorage builds the stores of the embedded etcd server; its
// gRPC clients are made from clientCfg. lone is a server's own etcd, never a
// member of a cluster.
func newLocalEtcdStorage(server *etcdserver.EtcdServer, clientCfg clientv3.Config, lone bool) (*localEtcdStorage, error) {
	// One logger for every client, as the library shares one.
	lg, err := logutil.CreateDefaultZapLogger(zapcore.ErrorLevel)
	if err != nil {
		return nil, fmt.Errorf("etcd client logger: %w", err)
	}
	// The library's dial timeout and keepalives.
	clientCfg.Logger = lg.Named("etcd-client")
	clientCfg.DialTimeout, clientCfg.DialKeepAliveTime, clientCfg.DialKeepAliveTimeout = 20*time.Second, 30*time.Second, 10*time.Second
	dial := func() (*clientv3.Client, error) { return clientv3.New(clientCfg) }
	l := &localEtcdStorage{kv: adapter.KvServerToKvClient(v3rpc.NewQuotaKVServer(server)), dial: dial}
	if lone {
		l.watches = v3rpc.NewWatchServer(server)
	}
	return l, nil
}

// options has every resource's store built by decorate.
func (l *localEtcdStorage) options(getter generic.RESTOptionsGetter) generic.RESTOptionsGetter {
	return decoratedOptions{RESTOptionsGetter: getter, decorator: l.decorate}
}

// Close stops the compactor. Each store's client is closed by the store's
// destroy function, as the library does.
func (l *localEtcdStorage) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.compactor != nil {
		l.compactor.Stop()
		_ = l.compactClient.Close()
		l.compactor, l.compactClient = nil, nil
	}
}

// decoratedOptions gives every resource the decorator.
type decoratedOptions struct {
	generic.RESTOptionsGetter
	decorator generic.StorageDecorator
}

func (d decoratedOptions) GetRESTOptions(resource schema.GroupResource, example runtime.Object) (generic.RESTOptions, error) {
	opts, err := d.RESTOptionsGetter.GetRESTOptions(resource, example)
	if err != nil {
		return opts, err
	}
	opts.Decorator = d.decorator
	return opts, nil
}

// decorate is the library's StorageWithCacher on a store of raw.
func (l *localEtcdStorage) decorate(cfg *storagebackend.ConfigForResource, resourcePrefix string,
	keyFunc func(obj runtime.Object) (string, error), newFunc, newListFunc func() runtime.Object,
	getAttrs storage.AttrFunc, triggers storage.IndexerFuncs, indexers *cache.Indexers) (storage.Interface, factory.DestroyFunc, error) {
	raw, destroyRaw, err := l.raw(cfg, newFunc, newListFunc, resourcePrefix)
	if err != nil {
		return nil, nil, err
	}
	cacher, err := cacherstorage.NewCacherFromConfig(cacherstorage.Config{
		Storage:             raw,
		Versioner:           storage.APIObjectVersioner{},
		GroupResource:       cfg.GroupResource,
		EventsHistoryWindow: cfg.EventsHistoryWindow,
		ResourcePrefix:      resourcePrefix,
		KeyFunc:             keyFunc,
		NewFunc:             newFunc,
		NewListFunc:         newListFunc,
		GetAttrsFunc:        getAttrs,
		IndexerFuncs:        triggers,
		Indexers:            indexers,
		Codec:               cfg.Codec,
	})
	if err != nil {
		destroyRaw()
		return nil, nil, fmt.Errorf("watch cache of %s: %w", cfg.GroupResource, err)
	}
	delegator := cacherstorage.NewCacheDelegator(cacher, raw)
	var once sync.Once
	return delegator, func() {
		once.Do(func() {
			delegator.Stop()
			cacher.Stop()
			destroyRaw()
		})
	}, nil
}

// raw is the library's etcd3 storage for one resource, its KV in process.
func (l *localEtcdStorage) raw(cfg *storagebackend.ConfigForResource, newFunc, newListFunc func() runtime.Object, resourcePrefix string) (storage.Interface, factory.DestroyFunc, error) {
	compacts, err := l.compactorFor(cfg)
	if err != nil {
		return nil, nil, err
	}
	c, err := l.dial()
	if err != nil {
		return nil, nil, fmt.Errorf("etcd client for %s: %w", cfg.GroupResource, err)
	}
	// The latency tracker keeps the library's etcd request metrics.
	c.KV = etcd3.NewETCDLatencyTracker(writingKV{KV: clientv3.NewKVFromKVClient(localKV{l.kv}, c), reads: c.KV})
	if l.watches != nil {
		// Closed with c, as the gRPC watcher it replaces.
		_ = c.Watcher.Close()
		c.Watcher = clientv3.NewWatchFromWatchClient(adapter.WatchServerToWatchClient(l.watches), c)
	}
	kc := &kubernetes.Client{Client: c}
	kc.Kubernetes = kc

	transformer := cfg.Transformer
	if transformer == nil {
		transformer = identity.NewEncryptCheckTransformer()
	}
	versioner := storage.APIObjectVersioner{}
	decoder := etcd3.NewDefaultDecoder(cfg.Codec, versioner)
	unsafeDeletion := utilfeature.DefaultFeatureGate.Enabled(genericfeatures.AllowUnsafeMalformedObjectDeletion)
	if unsafeDeletion {
		transformer = etcd3.WithCorruptObjErrorHandlingTransformer(transformer)
		decoder = etcd3.WithCorruptObjErrorHandlingDecoder(decoder)
	}
	store, err := etcd3.New(kc, compacts, cfg.Codec, newFunc, newListFunc, cfg.Prefix, resourcePrefix,
		cfg.GroupResource, transformer, cfg.LeaseManagerConfig, decoder, versioner)
	if err != nil {
		_ = c.Close()
		return nil, nil, fmt.Errorf("etcd store for %s: %w", cfg.GroupResource, err)
	}
	var once sync.Once
	destroy := func() {
		once.Do(func() {
			store.Close()
			_ = c.Close()
		})
	}
	var s storage.Interface = store
	if unsafeDeletion {
		s = etcd3.NewStoreWithUnsafeCorruptObjectDeletion(s, cfg.GroupResource)
	}
	return s, destroy, nil
}

// compactorFor starts the compactor with the first store, at that store's
// compaction interval (every resource has the same); none for interval 0,
// as in the library.
func (l *localEtcdStorage) compactorFor(cfg *storagebackend.ConfigForResource) (etcd3.Compactor, error) {
	if cfg.CompactionInterval == 0 {
		return nil, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.compactor == nil {
		c, err := l.dial()
		if err != nil {
			return nil, fmt.Errorf("etcd client for the compactor: %w", err)
		}
		l.compactor, l.compactClient = etcd3.StartCompactorPerEndpoint(c, cfg.CompactionInterval), c
	}
	return l.compactor, nil
}

// writingKV sends writes (Put, Delete, Txn) to etcd in process and
// reads (Get, streamed lists) to reads, the gRPC client's KV, which
// retries them while etcd is briefly without a leader. Reads stay gRPC
// for a reason measured: in process, a flood of consistent lists (each
// reads etcd's current revision) got through five times faster and
// starved the server's own readiness check (TestFloodLeavesOthersATurn).
type writingKV struct {
	clientv3.KV
	reads clientv3.KV
}

func (k writingKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	return k.reads.Get(ctx, key, opts...)
}

func (k writingKV) GetStream(ctx context.Context, key string, opts ...clientv3.OpOption) (clientv3.GetStreamChan, error) {
	return k.reads.GetStream(ctx, key, opts...)
}

func (k writingKV) Do(ctx context.Context, op clientv3.Op) (clientv3.OpResponse, error) {
	if op.IsGet() {
		return k.reads.Do(ctx, op)
	}
	return k.KV.Do(ctx, op)
}

// localKV is etcd's KV service called in process. A request whose
// context ended fails with the context's error, as a gRPC call's does.
type localKV struct{ pb.KVClient }

func (k localKV) Txn(ctx context.Context, in *pb.TxnRequest, opts ...grpc.CallOption) (*pb.TxnResponse, error) {
	resp, err := k.KVClient.Txn(ctx, in, opts...)
	return resp, contextError(ctx, err)
}

func (k localKV) Put(ctx context.Context, in *pb.PutRequest, opts ...grpc.CallOption) (*pb.PutResponse, error) {
	resp, err := k.KVClient.Put(ctx, in, opts...)
	return resp, contextError(ctx, err)
}

func (k localKV) DeleteRange(ctx context.Context, in *pb.DeleteRangeRequest, opts ...grpc.CallOption) (*pb.DeleteRangeResponse, error) {
	resp, err := k.KVClient.DeleteRange(ctx, in, opts...)
	return resp, contextError(ctx, err)
}

// contextError is ctx's error for a request that failed once ctx ended,
// as a gRPC call's is; etcd's own answer otherwise.
func contextError(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
