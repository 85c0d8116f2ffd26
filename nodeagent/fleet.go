package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/internal/failover"
	"skiff.dev/skiff/internal/writes"
)

// Fleet hosts simulated nodes in one process, as kwok does: the fleet for
// scale tests. Each node is a real Node with its own Ed25519 identity, its
// own Lease renewed with that identity, and its Instances' status written
// with it; containers are simulated. The nodes share one watch of the
// bound Instances, which reads every node's Instances: no node identity
// may, so the fleet reads with the credentials of its kubeconfig (an
// admin's).
type Fleet struct {
	agent      *Agent
	size       int
	kubeconfig *rest.Config
}

// joinConcurrency bounds concurrent joins at fleet start.
const joinConcurrency = 32

// NewFleet returns a fleet of size nodes named PREFIX-0..size-1, where
// PREFIX is cfg.NodeName; reads go through kubeconfig.
func NewFleet(cfg Config, size int, kubeconfig *rest.Config) (*Fleet, error) {
	if size < 1 {
		return nil, fmt.Errorf("--simulate-nodes %d: must be positive", size)
	}
	if cfg.Runtime != "sim" {
		return nil, fmt.Errorf("--simulate-nodes needs --runtime sim, not %q", cfg.Runtime)
	}
	if kubeconfig == nil {
		return nil, errors.New("--simulate-nodes needs --kubeconfig: the fleet's shared Instance watch reads every node's Instances, which no node identity may")
	}
	a, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("--data-dir: %w", err)
	}
	return &Fleet{agent: a, size: size, kubeconfig: kubeconfig}, nil
}

// simNode is one simulated node.
type simNode struct {
	agent      *Agent
	client     client.Client // direct, as the node
	http       *http.Client  // the node's connection
	reconciler *instanceReconciler
	lease      *leaseKeeper
}

// Run joins every node, then renews their Leases and runs their Instances
// until ctx ends.
func (f *Fleet) Run(ctx context.Context) error {
	a := f.agent
	machine, err := readMachine(a.cfg.DataDir, a.cfg.MaxInstances, "")
	if err != nil {
		return err
	}
	machine.Info.RuntimeName = a.rt.Name()
	machine.Info.RuntimeVersion, _ = a.rt.Version(ctx)
	httpClient, err := rest.HTTPClientFor(f.kubeconfig)
	if err != nil {
		return err
	}
	mapper, err := apiutil.NewDynamicRESTMapper(f.kubeconfig, httpClient)
	if err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	mgr, err := manager.New(f.kubeconfig, manager.Options{
		Scheme: a.scheme, MapperProvider: func(*rest.Config, *http.Client) (meta.RESTMapper, error) { return mapper, nil },
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache: cache.Options{
			DefaultTransform: cache.TransformStripManagedFields(),
			// A node sees an Instance once it is bound, as an agent's
			// own watch (spec.nodeName=NODE) does: no fleet node has
			// anything to do with one the scheduler has not placed.
			ByObject: map[client.Object]cache.ByObject{
				&skiffv1alpha1.Instance{}: {Field: fields.OneTermNotEqualSelector("spec.nodeName", "")},
			},
		},
	})
	if err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	// One list of API servers for every node, kept current through one
	// node's connection.
	servers, err := knownServers(a.cfg)
	if err != nil {
		return err
	}
	nodes, err := f.join(ctx, mgr, mapper, machine, servers)
	if err != nil {
		return err
	}
	klog.InfoS("fleet joined", "nodes", len(nodes), "prefix", a.cfg.NodeName)
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		klog.ErrorS(err, "sd_notify")
	}
	err = builder.ControllerManagedBy(mgr).For(&skiffv1alpha1.Instance{}).
		Named("fleet-instances").
		WithOptions(controller.Options{SkipNameValidation: ptr.To(true), MaxConcurrentReconciles: 16}).
		Complete(reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
			var inst skiffv1alpha1.Instance
			if err := mgr.GetCache().Get(ctx, req.NamespacedName, &inst); err != nil {
				return reconcile.Result{}, client.IgnoreNotFound(err)
			}
			n, ok := nodes[inst.Spec.NodeName]
			if !ok {
				return reconcile.Result{}, nil // not one of ours
			}
			return n.reconciler.Reconcile(ctx, req)
		}))
	if err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return mgr.Start(ctx) })
	for _, n := range nodes { // any one node's connection
		g.Go(func() error { return serversRefresher(a.cfg, servers, n.http).Start(ctx) })
		break
	}
	for _, n := range nodes {
		g.Go(func() error { n.keep(ctx, machine); return nil })
	}
	return g.Wait()
}

// join registers every node, joinConcurrency at a time.
func (f *Fleet) join(ctx context.Context, mgr manager.Manager, mapper meta.RESTMapper, m *Machine, servers *failover.Servers) (map[string]*simNode, error) {
	a := f.agent
	var mu sync.Mutex
	nodes := make(map[string]*simNode, f.size)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(joinConcurrency)
	for i := range f.size {
		g.Go(func() error {
			cfg := a.cfg
			cfg.NodeName = a.cfg.NodeName + "-" + strconv.Itoa(i)
			cfg.DataDir = filepath.Join(a.cfg.DataDir, "nodes", cfg.NodeName)
			j, err := join(gctx, cfg, a.scheme, joinOptions{mapper: mapper, http1: true, servers: servers})
			if err != nil {
				return fmt.Errorf("node %s: %w", cfg.NodeName, err)
			}
			// Reads of Instances come from the shared cache; writes go
			// out as this node.
			cached, err := client.New(j.config, client.Options{
				Scheme: a.scheme, Mapper: mapper, HTTPClient: j.http,
				Cache: &client.CacheOptions{Reader: mgr.GetCache()},
			})
			if err != nil {
				return fmt.Errorf("node %s: %w", cfg.NodeName, err)
			}
			node := &Agent{cfg: cfg, scheme: a.scheme, rt: a.rt, metrics: a.metrics}
			n := &simNode{
				agent:  node,
				client: j.client,
				http:   j.http,
				reconciler: &instanceReconciler{
					client: writes.MetadataReplies(cached, j.config, j.http), sources: j.client, rt: a.rt, node: cfg.NodeName, hostIP: m.hostIP(), backoff: cfg.Backoff, metrics: a.metrics,
					security: securityPolicy{allowPrivileged: cfg.AllowPrivileged},
				},
				lease: &leaseKeeper{client: j.client, node: cfg.NodeName, interval: cfg.LeaseInterval},
			}
			if err := node.reportStatus(gctx, j.client, m); err != nil {
				return err
			}
			if err := n.lease.renew(gctx); err != nil {
				return err
			}
			mu.Lock()
			nodes[cfg.NodeName] = n
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return nodes, nil
}

// keep renews the node's Lease every interval and refreshes its status
// every status interval, until ctx ends. Nodes start at random offsets
// within an interval, so renewals spread out.
func (n *simNode) keep(ctx context.Context, m *Machine) {
	cfg := n.agent.cfg
	select {
	case <-ctx.Done():
		return
	case <-time.After(rand.N(cfg.LeaseInterval)):
	}
	lease := time.NewTicker(cfg.LeaseInterval)
	defer lease.Stop()
	status := time.NewTicker(cfg.StatusInterval)
	defer status.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-lease.C:
			if err := n.lease.renew(ctx); err != nil && ctx.Err() == nil {
				klog.ErrorS(err, "renew lease", "node", cfg.NodeName)
			}
		case <-status.C:
			if err := n.agent.reportStatus(ctx, n.client, m); err != nil && ctx.Err() == nil {
				klog.ErrorS(err, "report node status", "node", cfg.NodeName)
			}
		}
	}
}
