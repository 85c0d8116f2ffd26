package mcp

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"sync"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/utils/lru"
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

// Scheme is the scheme the Conns decode with.
func (c *Connections) Scheme() *runtime.Scheme { return c.scheme }

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
		c.own = conn
	}
	return c.own, nil
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
