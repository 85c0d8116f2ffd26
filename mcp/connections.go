package mcp

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"k8s.io/utils/lru"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/identity"
)

// Conn is the bridge's way to the API server for one caller.
type Conn struct {
	client.WithWatch
	// HTTP and Host reach subresources the typed client does not stream
	// (an Instance's log).
	HTTP *http.Client
	Host string
	// cluster, when set, answers whole-cluster lists (every Instance,
	// Node and Workload) from an informer cache.
	cluster *clusterCache
}

// clusterReader reads whole-cluster lists: from the cache of the
// bridge's own identity (stdio), else from the API server as the caller.
func (c *Conn) clusterReader(ctx context.Context) client.Reader {
	if c.cluster != nil {
		if r, err := c.cluster.reader(ctx); err == nil {
			return r
		}
	}
	return c
}

// clusterCache is an informer cache started on first use: the first
// whole-cluster answer waits for its lists, later ones read memory
// instead of decoding every Instance again (seconds at 10,000).
type clusterCache struct {
	cfg  *rest.Config
	opts cache.Options

	once  sync.Once
	cache cache.Cache
	err   error
	stop  context.CancelFunc
	done  chan struct{}
}

// cacheSyncTimeout bounds the first wait for the cache.
const cacheSyncTimeout = time.Minute

func (c *clusterCache) reader(context.Context) (client.Reader, error) {
	c.once.Do(func() {
		c.cache, c.err = cache.New(c.cfg, c.opts)
		if c.err != nil {
			return
		}
		runCtx, stop := context.WithCancel(context.Background())
		c.stop, c.done = stop, make(chan struct{})
		go func() {
			defer close(c.done)
			if err := c.cache.Start(runCtx); err != nil {
				klog.ErrorS(err, "mcp: cluster cache")
			}
		}()
		// Not the first caller's context: its end must not fail the cache.
		syncCtx, cancel := context.WithTimeout(runCtx, cacheSyncTimeout)
		defer cancel()
		if !c.cache.WaitForCacheSync(syncCtx) {
			c.err = errors.New("cluster cache did not sync")
		}
	})
	return c.cache, c.err
}

func (c *clusterCache) close() {
	// After once: a cache being started is waited for, none starts later.
	c.once.Do(func() { c.err = errors.New("closed") })
	if c.stop != nil {
		c.stop()
		<-c.done
	}
}

// Connections hand out a Conn per caller: the kubeconfig's own identity,
// or, over HTTP, the caller's key impersonated (identity.KeyUserName).
// Conns are cached per key; they share the TLS transport.
type Connections struct {
	base        *rest.Config
	scheme      *runtime.Scheme
	mapper      meta.RESTMapper
	impersonate bool

	mu    sync.Mutex
	own   *Conn
	byKey *lru.Cache
}

// callerCacheSize bounds the Conns kept for callers over HTTP.
const callerCacheSize = 256

// NewConnections connects with cfg. With impersonate, every call must come
// from an authenticated caller (WithCaller) and acts as that caller's key;
// cfg's identity then needs only discovery and impersonation.
func NewConnections(cfg *rest.Config, impersonate bool) (*Connections, error) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{skiffv1alpha1.AddToScheme, corev1.AddToScheme, coordinationv1.AddToScheme} {
		if err := add(scheme); err != nil {
			return nil, err
		}
	}
	cfg = rest.CopyConfig(cfg)
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 200, 400
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("api server client: %w", err)
	}
	mapper, err := apiutil.NewDynamicRESTMapper(cfg, hc)
	if err != nil {
		return nil, fmt.Errorf("api server discovery: %w", err)
	}
	return &Connections{base: cfg, scheme: scheme, mapper: mapper, impersonate: impersonate, byKey: lru.New(callerCacheSize)}, nil
}

// For returns the Conn of the caller of a request: extra is the request's
// HTTP extras (nil on stdio).
func (c *Connections) For(ctx context.Context, extra *sdk.RequestExtra) (*Conn, error) {
	if !c.impersonate {
		return c.ownConn()
	}
	key, ok := callerKey(ctx, extra)
	if !ok {
		return nil, errors.New("no authenticated caller: over HTTP every call needs the caller's client certificate")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.byKey.Get(string(key)); ok {
		return v.(*Conn), nil
	}
	cfg := rest.CopyConfig(c.base)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: identity.KeyUserName(key)}
	conn, err := c.connect(cfg)
	if err != nil {
		return nil, err
	}
	c.byKey.Add(string(key), conn)
	return conn, nil
}

func (c *Connections) ownConn() (*Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.own == nil {
		conn, err := c.connect(c.base)
		if err != nil {
			return nil, err
		}
		conn.cluster = &clusterCache{cfg: c.base, opts: cache.Options{Scheme: c.scheme, Mapper: c.mapper}}
		c.own = conn
	}
	return c.own, nil
}

// Close stops the cluster cache, if one was started.
func (c *Connections) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.own != nil && c.own.cluster != nil {
		c.own.cluster.close()
	}
}

func (c *Connections) connect(cfg *rest.Config) (*Conn, error) {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("api server client: %w", err)
	}
	cl, err := client.NewWithWatch(cfg, client.Options{Scheme: c.scheme, Mapper: c.mapper, HTTPClient: hc})
	if err != nil {
		return nil, fmt.Errorf("api server client: %w", err)
	}
	return &Conn{WithWatch: cl, HTTP: hc, Host: cfg.Host}, nil
}

// callerHeader carries the caller's key from the HTTP front to the
// handlers of a stateful session (whose context is the first request's).
// The front always overwrites it, so a client cannot set it.
const callerHeader = "X-Skiff-Caller-Key"

type callerKeyCtx struct{}

// WithCaller returns ctx carrying the key of an authenticated caller.
func WithCaller(ctx context.Context, key ed25519.PublicKey) context.Context {
	return context.WithValue(ctx, callerKeyCtx{}, key)
}

// callerKey is the request's caller: the header the HTTP front set on
// this very request, else the context's.
func callerKey(ctx context.Context, extra *sdk.RequestExtra) (ed25519.PublicKey, bool) {
	if extra != nil && extra.Header != nil {
		if v := extra.Header.Get(callerHeader); v != "" {
			key, err := identity.ParsePublicKey(v)
			return key, err == nil
		}
	}
	key, ok := ctx.Value(callerKeyCtx{}).(ed25519.PublicKey)
	return key, ok
}
