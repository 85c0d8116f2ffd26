package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/controllers/gc"
	"skiff.dev/skiff/controllers/metrics"
	"skiff.dev/skiff/controllers/nodeipam"
	"skiff.dev/skiff/controllers/nodelifecycle"
	"skiff.dev/skiff/controllers/scheduler"
	"skiff.dev/skiff/controllers/workload"
	"skiff.dev/skiff/internal/writes"
)

// LeaderElectionID names the Lease in skiff-system the controllers elect a
// leader on.
const LeaderElectionID = "skiff-controllers"

// Config configures the controllers.
type Config struct {
	// Scoring is spread (least allocated, default) or binpack (--scoring).
	Scoring scheduler.Strategy
	// NodeGracePeriod is how long a node may miss Lease renewals before it
	// is unreachable (--node-grace-period).
	NodeGracePeriod time.Duration
	// ClusterCIDR is the IPv4 network the Nodes' subnets are cut from
	// (--cluster-cidr).
	ClusterCIDR string
	// NodeCIDRMaskSize is the prefix length of each Node's subnet
	// (--node-cidr-mask-size): the cluster CIDR holds
	// 2^(NodeCIDRMaskSize - its prefix length) Nodes.
	NodeCIDRMaskSize int
	// LeaderElect makes the controllers elect a leader on a Lease, so that
	// several processes may run them (--leader-elect).
	LeaderElect bool
	// LeaseDuration, RenewDeadline and RetryPeriod tune the election: a
	// killed leader is replaced within about LeaseDuration+RetryPeriod.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// Workers is how many Workloads reconcile at once.
	Workers int
	// Concurrency bounds one Workload's writes in flight.
	Concurrency int
	// QPS and Burst bound the controllers' requests to the API server
	// (client-go's default of 5/s would make 10,000 Instances take an hour).
	QPS   float32
	Burst int
	// SkipNameValidation lets tests build several managers in one process.
	SkipNameValidation bool
}

// DefaultConfig returns the configuration `skiff server` runs with.
func DefaultConfig() Config {
	return Config{
		Scoring:          scheduler.Spread,
		NodeGracePeriod:  nodelifecycle.DefaultGracePeriod,
		ClusterCIDR:      nodeipam.DefaultClusterCIDR,
		NodeCIDRMaskSize: nodeipam.DefaultNodeCIDRMaskSize,
		LeaseDuration:    8 * time.Second,
		RenewDeadline:    5 * time.Second,
		RetryPeriod:      time.Second,
		Workers:          4,
		Concurrency:      workload.DefaultConcurrency,
		QPS:              2000,
		Burst:            4000,
	}
}

// Validate reports the first invalid field, named by its flag.
func (c *Config) Validate() error {
	if c.Scoring != scheduler.Spread && c.Scoring != scheduler.BinPack {
		return fmt.Errorf("--scoring %q: must be spread or binpack", c.Scoring)
	}
	if err := c.lifecycle().Validate(); err != nil {
		return err
	}
	if err := c.ipam().Validate(); err != nil {
		return err
	}
	if c.LeaderElect && !(c.RetryPeriod > 0 && c.RetryPeriod < c.RenewDeadline && c.RenewDeadline < c.LeaseDuration) {
		return errors.New("--leader-elect: need 0 < retry period < renew deadline < lease duration")
	}
	if c.Workers < 1 || c.Concurrency < 1 {
		return errors.New("--workers and --concurrency must be at least 1")
	}
	if c.QPS <= 0 || c.Burst < 1 {
		return errors.New("--kube-api-qps and --kube-api-burst must be positive")
	}
	return nil
}

// ipam is the node IPAM controller's share of the configuration.
func (c *Config) lifecycle() nodelifecycle.Config {
	return nodelifecycle.Config{GracePeriod: c.NodeGracePeriod}
}

func (c *Config) ipam() nodeipam.Config {
	return nodeipam.Config{ClusterCIDR: c.ClusterCIDR, NodeCIDRMaskSize: c.NodeCIDRMaskSize}
}

// Controllers is the controllers in one manager.
type Controllers struct {
	cfg        Config
	kubeconfig *rest.Config
	registry   *prometheus.Registry
	metrics    *metrics.Metrics
	// mgr is set while Start runs.
	mgr atomic.Pointer[manager.Manager]
	// members is the control plane's gossip member (nil: Leases alone).
	members nodelifecycle.WatchedMembers
	// local lists and watches in process (nil: through the API).
	local LocalReader
}

// LocalReader lists and watches the objects of a kind without the API:
// the storage of the server the controllers run in. It says false for a
// type it does not store.
type LocalReader interface {
	ListerWatcher(obj runtime.Object) (toolscache.ListerWatcher, bool)
}

// ReadFrom makes the controllers' caches list and watch through r, for
// every kind r stores; their writes still go through the API. It is for
// controllers in the server's own process. Call it before Start.
func (c *Controllers) ReadFrom(r LocalReader) { c.local = r }

// UseGossip makes the node lifecycle controller judge nodes by gossip
// too (see nodelifecycle). Call it before Start.
func (c *Controllers) UseGossip(m nodelifecycle.WatchedMembers) { c.members = m }

// New prepares the controllers for the API server kubeconfig points at.
// Nothing is contacted until Start: the server may still be starting.
func New(cfg Config, kubeconfig *rest.Config) (*Controllers, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	kubeconfig = rest.CopyConfig(kubeconfig)
	kubeconfig.QPS, kubeconfig.Burst = cfg.QPS, cfg.Burst
	c := &Controllers{cfg: cfg, kubeconfig: kubeconfig, registry: prometheus.NewRegistry()}
	c.metrics = metrics.New(c.registry)
	c.registry.MustRegister(clusterGauges{c})
	return c, nil
}

// Start builds the manager and runs the controllers until ctx ends. With
// leader election they wait to be elected first.
func (c *Controllers) Start(ctx context.Context) error {
	mgr, err := c.build()
	if err != nil {
		return err
	}
	c.mgr.Store(&mgr)
	defer c.mgr.Store(nil)
	return mgr.Start(ctx)
}

func (c *Controllers) build() (manager.Manager, error) {
	cfg := c.cfg
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{skiffv1alpha1.AddToScheme, corev1.AddToScheme, coordinationv1.AddToScheme} {
		if err := add(scheme); err != nil {
			return nil, err
		}
	}
	opts := manager.Options{
		Scheme:  scheme,
		Metrics: metricsserver.Options{BindAddress: "0"}, // served by the API server
		// The health of each part is reported on the API server's /health.
		HealthProbeBindAddress:        "0",
		LeaderElection:                cfg.LeaderElect,
		LeaderElectionID:              LeaderElectionID,
		LeaderElectionNamespace:       "skiff-system",
		LeaderElectionResourceLock:    "leases",
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 ptr.To(cfg.LeaseDuration),
		RenewDeadline:                 ptr.To(cfg.RenewDeadline),
		RetryPeriod:                   ptr.To(cfg.RetryPeriod),
		// No controller reads managed fields: the cache holds every
		// object without them (a third of an Instance's size), and a
		// write from a cached copy keeps the server's.
		Cache: cache.Options{DefaultTransform: cache.TransformStripManagedFields()},
	}
	if c.local != nil && opts.Cache.ByObject == nil && opts.Cache.DefaultNamespaces == nil &&
		opts.Cache.DefaultLabelSelector == nil && opts.Cache.DefaultFieldSelector == nil {
		// A local list and watch see every namespace and object, as the
		// caches do while no selector or namespace narrows them: one
		// that did would be ignored here, so none may.
		opts.Cache.NewInformer = func(lw toolscache.ListerWatcher, obj runtime.Object, resync time.Duration, indexers toolscache.Indexers) toolscache.SharedIndexInformer {
			if local, ok := c.local.ListerWatcher(obj); ok {
				lw = local
			}
			return toolscache.NewSharedIndexInformer(lw, obj, resync, indexers)
		}
	}
	if cfg.SkipNameValidation {
		opts.Controller = config.Controller{SkipNameValidation: ptr.To(true)}
	}
	mgr, err := manager.New(c.kubeconfig, opts)
	if err != nil {
		return nil, fmt.Errorf("controller manager: %w", err)
	}
	sched := &scheduler.Controller{Client: mgr.GetClient(), Scheduler: scheduler.New(cfg.Scoring), Cache: scheduler.NewCache(30 * time.Second), Metrics: c.metrics}
	if err := sched.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("scheduler: %w", err)
	}
	// The Workload controller's creates and status writes take back only
	// metadata: it never reads what they return.
	wlClient := writes.MetadataReplies(mgr.GetClient(), mgr.GetConfig(), mgr.GetHTTPClient())
	wl := &workload.Controller{Client: wlClient, Workers: cfg.Workers, Concurrency: cfg.Concurrency, Metrics: c.metrics}
	if err := wl.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("workload controller: %w", err)
	}
	nodes := &nodelifecycle.Controller{
		Client: mgr.GetClient(), Liveness: nodelifecycle.NewLeases(mgr.GetClient()), Members: c.members,
		Config: cfg.lifecycle(),
	}
	if err := nodes.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("node lifecycle controller: %w", err)
	}
	ipam := &nodeipam.Controller{Client: mgr.GetClient(), Config: cfg.ipam()}
	if err := ipam.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("node IPAM controller: %w", err)
	}
	collector := &gc.Collector{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Kinds: gc.DefaultKinds()}
	if err := collector.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("garbage collector: %w", err)
	}
	return mgr, nil
}

// clusterGauges reports the cluster gauges from the running manager's
// cache, and nothing while none runs.
type clusterGauges struct{ c *Controllers }

func (g clusterGauges) Describe(ch chan<- *prometheus.Desc) { metrics.NewCluster(nil).Describe(ch) }

func (g clusterGauges) Collect(ch chan<- prometheus.Metric) {
	if mgr := g.c.mgr.Load(); mgr != nil {
		metrics.NewCluster((*mgr).GetCache()).Collect(ch)
	}
}

// Gatherer serves the controllers' metrics. (controller-runtime's own
// registry repeats the process and Go collectors the API server serves.)
func (c *Controllers) Gatherer() prometheus.Gatherer { return c.registry }

// Check reports the controllers healthy once they run with synced caches
// (a standby waiting for election is healthy too).
func (c *Controllers) Check(ctx context.Context) error {
	mgr := c.mgr.Load()
	if mgr == nil {
		return errors.New("not running")
	}
	ctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if !(*mgr).GetCache().WaitForCacheSync(ctx) {
		return errors.New("informer caches not synced yet")
	}
	return nil
}
