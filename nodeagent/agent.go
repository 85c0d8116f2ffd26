package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/coreos/go-systemd/v22/daemon"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/source"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/gossip"
	"skiff.dev/skiff/internal/writes"
	"skiff.dev/skiff/nodeagent/image"
	"skiff.dev/skiff/nodeagent/network"
	cruntime "skiff.dev/skiff/nodeagent/runtime"
	"skiff.dev/skiff/nodeagent/usage"
)

// Agent is one node's agent.
type Agent struct {
	cfg    Config
	scheme *runtime.Scheme
	rt     cruntime.Runtime
	// images and network are nil with the sim runtime.
	images  *image.Store
	network *network.Manager
	metrics *metrics
	// cgroups are the host's, read once at start: containers' usage and
	// OOM kills.
	cgroups usage.Cgroups
}

// Directories under the data dir.
const (
	runtimeDir    = "runtime"    // the oci runtime's state, bundles and shims
	containersDir = "containers" // ID/container.log
	rootfsDir     = "rootfs"     // ID/rootfs overlay mounts
	storeDir      = "store"      // the image store
	importDir     = "images"     // image archives imported at start (air-gap)
	networkDir    = "network"    // CNI configuration, cache, leases, Instances' namespaces
)

// New validates cfg and returns an agent.
func New(cfg Config) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{skiffv1alpha1.AddToScheme, coordinationv1.AddToScheme, corev1.AddToScheme} {
		if err := add(scheme); err != nil {
			return nil, err
		}
	}
	a := &Agent{cfg: cfg, scheme: scheme, metrics: newMetrics(), cgroups: usage.HostCgroups()}
	// Made now: the machine is read (the data directory's file system)
	// before the Node is registered.
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("--data-dir: %w", err)
	}
	if cfg.Runtime == "sim" {
		a.rt = cruntime.NewSim(cruntime.SimConfig{StartDelay: cfg.SimStartDelay, FailureRate: cfg.SimFailureRate})
		return a, nil
	}
	oci, err := cruntime.NewOCI(cfg.Runtime, filepath.Join(cfg.DataDir, runtimeDir))
	if err != nil {
		return nil, fmt.Errorf("--runtime %s: %w (install it, or choose another with --runtime youki|runc|crun|sim|PATH)", cfg.Runtime, err)
	}
	a.rt = oci
	if a.images, err = image.NewStore(filepath.Join(cfg.DataDir, storeDir), image.Options{InsecureRegistries: cfg.InsecureRegistries}); err != nil {
		return nil, err
	}
	a.network, err = network.New(network.Config{
		PluginDir: cfg.CNIPluginDir, DataDir: filepath.Join(cfg.DataDir, networkDir),
		ClusterCIDR: netip.MustParsePrefix(cfg.ClusterCIDR), HostNetNS: network.ResolveNetNS(cfg.NetNS),
	})
	if err != nil {
		return nil, fmt.Errorf("instance networking: %w", err)
	}
	return a, nil
}

// importImages imports the image archives and layouts in {data-dir}/images.
func (a *Agent) importImages(ctx context.Context) {
	dir := filepath.Join(a.cfg.DataDir, importDir)
	if _, err := os.Stat(dir); err != nil {
		return
	}
	refs, err := a.images.Import(ctx, dir)
	if len(refs) > 0 {
		klog.InfoS("imported images", "dir", dir, "images", refs)
	}
	if err != nil {
		klog.ErrorS(err, "import images", "dir", dir)
	}
}

// Run joins, then runs the agent's parts in one manager until ctx ends:
// the Instance controller, the HTTPS endpoint, the Lease renewer, the
// status reporter, the gossip member and the fence.
func (a *Agent) Run(ctx context.Context) error {
	// What can fail on this machine fails before the Node is registered:
	// a Node whose agent never ran would stay behind.
	runtimeVersion, err := a.rt.Version(ctx)
	if err != nil {
		return fmt.Errorf("runtime %s: %w", a.rt.Name(), err)
	}
	machine, err := readMachine(a.cfg.DataDir, a.cfg.MaxInstances, network.ResolveNetNS(a.cfg.NetNS))
	if err != nil {
		return err
	}
	listen := listenAddress(a.cfg.Listen, machine.hostIP(), a.cfg.NetNS)
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", listen, err)
	}
	defer ln.Close()
	j, err := joinPatiently(ctx, a.cfg, a.scheme, joinOptions{}, joinAttempt)
	if err != nil {
		return err
	}
	klog.InfoS("joined", "node", a.cfg.NodeName, "server", j.servers.Current(), "key", j.id.PublicKeyString())
	machine.Info.RuntimeName, machine.Info.RuntimeVersion = a.rt.Name(), runtimeVersion
	if c := oomCondition(machine.OOMFloor); c != nil && a.rt.Name() != "sim" {
		klog.InfoS("OOM scores limited", "node", a.cfg.NodeName, "detail", c.Message)
	}
	if a.images != nil {
		a.importImages(ctx)
	}
	machine.Endpoint = endpoint(ln, machine.hostIP())
	mgr, r, err := a.newManager(j, machine)
	if err != nil {
		return err
	}
	var members *gossip.Membership
	if a.cfg.GossipBind != "" {
		members, err = a.newMembership(ctx, j, machine, mgr.GetClient())
		switch {
		case errors.Is(err, gossip.ErrNotServed):
			klog.InfoS("gossip off: the server has none; the Lease is the only heartbeat", "node", a.cfg.NodeName)
		case err != nil:
			return err
		default:
			machine.GossipAddress = members.Addr()
			a.metrics.registry.MustRegister(members.Collector())
		}
	}
	if err := a.reportStatus(ctx, j.client, machine); err != nil {
		return err
	}
	var node skiffv1alpha1.Node
	if err := j.client.Get(ctx, client.ObjectKey{Name: a.cfg.NodeName}, &node); err == nil {
		a.warnOnFlagDrift(&node)
	}
	if err := a.addParts(mgr, j, machine, ln, members, r); err != nil {
		return err
	}
	// Tell systemd (Type=notify) the agent is up; a no-op elsewhere.
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		klog.ErrorS(err, "sd_notify")
	}
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	return nil
}

// addParts adds the agent's Runnables beside the Instance controller.
func (a *Agent) addParts(mgr manager.Manager, j *joined, m *Machine, ln net.Listener, members *gossip.Membership, r *instanceReconciler) error {
	srv := &server{rt: a.rt, instances: mgr.GetClient(), logDir: filepath.Join(a.cfg.DataDir, containersDir), apiserverKey: j.apiserverKey, metrics: a.metrics}
	a.metrics.registry.MustRegister(newInstancesCollector(mgr.GetCache()), newUsageCollector(a.rt, a.cgroups, "/proc"))
	status := newStatusReporter(a.cfg.StatusInterval, func(ctx context.Context) error { return a.reportStatus(ctx, j.client, m) })
	keeper := &leaseKeeper{client: j.client, node: a.cfg.NodeName, interval: a.cfg.LeaseInterval}
	renewer := &leaseRenewer{
		keeper: keeper, fast: a.cfg.LeaseInterval, slow: a.cfg.GossipLeaseInterval,
		renewed: func(ctx context.Context) {
			if r.fence != nil {
				r.fence.Contacted()
			}
			// Renewing again after the node lifecycle controller gave the
			// node up: say Ready now, not at the next status tick.
			if a.readyLost(ctx, mgr.GetClient()) {
				status.Kick()
			}
		},
		failed: func(_ context.Context, err error) { klog.ErrorS(err, "renew lease", "node", a.cfg.NodeName) },
	}
	parts := []manager.Runnable{
		manager.RunnableFunc(func(ctx context.Context) error { return srv.serve(ctx, ln, j.cert) }),
		manager.RunnableFunc(func(ctx context.Context) error { return j.cert.Run(ctx, nil) }),
		renewer, status, serversRefresher(a.cfg, j.servers, j.http),
	}
	if members != nil {
		renewer.gossipHealthy = members.Healthy
		parts = append(parts, manager.RunnableFunc(members.Run))
		if a.cfg.FenceAfter > 0 {
			r.fence = &fence{
				after: a.cfg.FenceAfter, node: a.cfg.NodeName, rt: a.rt, lastPeer: members.LastContact,
				instances: mgr.GetClient(), metrics: a.metrics,
				probe: func(ctx context.Context) error {
					return j.client.Get(ctx, client.ObjectKey{Namespace: skiffv1alpha1.NodeLeaseNamespace, Name: a.cfg.NodeName}, &coordinationv1.Lease{})
				},
			}
			parts = append(parts, r.fence)
		}
	}
	for _, p := range parts {
		if err := mgr.Add(p); err != nil {
			return fmt.Errorf("agent: %w", err)
		}
	}
	return nil
}

// newManager builds the controller that runs this node's Instances, with
// a cache that holds only them (field selector spec.nodeName), and the
// one that routes to other nodes' Instances (from every Node).
func (a *Agent) newManager(j *joined, m *Machine) (manager.Manager, *instanceReconciler, error) {
	mgr, err := manager.New(j.config, manager.Options{
		Scheme:  a.scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache: cache.Options{
			ByObject: map[client.Object]cache.ByObject{
				&skiffv1alpha1.Instance{}: {Field: fields.OneTermEqualSelector("spec.nodeName", a.cfg.NodeName)},
			},
			DefaultTransform: cache.TransformStripManagedFields(),
		},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("instance controller: %w", err)
	}
	r := &instanceReconciler{
		client: writes.MetadataReplies(mgr.GetClient(), mgr.GetConfig(), mgr.GetHTTPClient()), sources: j.client, rt: a.rt, node: a.cfg.NodeName, hostIP: m.hostIP(), backoff: a.cfg.Backoff,
		logDir: filepath.Join(a.cfg.DataDir, containersDir), pidsLimit: a.cfg.PidsLimit, metrics: a.metrics,
		oom: newOOMPolicy(m.Capacity.Memory().Value(), m.OOMFloor), security: newSecurityPolicy(a.cfg.AllowPrivileged),
	}
	if a.images != nil {
		r.images, r.rootfsDir = a.images, filepath.Join(a.cfg.DataDir, rootfsDir)
		r.volumes = newVolumeManager(filepath.Join(a.cfg.DataDir, volumesDir), a.cfg.AllowHostPaths, j.client)
		r.prober = newProber(a.rt, r.event)
		r.cgroups = &a.cgroups
		if err := mgr.Add(manager.RunnableFunc(r.prober.Run)); err != nil {
			return nil, nil, fmt.Errorf("instance controller: %w", err)
		}
	}
	if a.network != nil {
		r.network, r.hostNetNS = a.network, network.ResolveNetNS(a.cfg.NetNS)
		if err := addNodeNetwork(mgr, a.cfg.NodeName, a.network); err != nil {
			return nil, nil, err
		}
	}
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error { return r.sweepLoop(ctx, mgr.GetCache()) })); err != nil {
		return nil, nil, fmt.Errorf("instance controller: %w", err)
	}
	b := builder.ControllerManagedBy(mgr).For(&skiffv1alpha1.Instance{}).
		Named("instances-" + a.cfg.NodeName).
		WithOptions(controller.Options{SkipNameValidation: ptr.To(true), MaxConcurrentReconciles: 4})
	if r.prober != nil {
		// What the probes conclude changes nothing in the API: they say so.
		b = b.WatchesRawSource(source.Channel(r.prober.changed, &handler.EnqueueRequestForObject{}))
	}
	err = b.Complete(r)
	if err != nil {
		return nil, nil, fmt.Errorf("instance controller: %w", err)
	}
	return mgr, r, nil
}

// listenAddress is where the agent's endpoint listens: --listen, but a
// host left out (":10250") is the node's own address, not every
// interface (say "0.0.0.0:10250" for that). With --netns the node's
// address lives in another namespace, so the host stays unspecified.
func listenAddress(listen, hostIP, netns string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil || host != "" || hostIP == "" || netns != "" {
		return listen
	}
	return net.JoinHostPort(hostIP, port)
}

// warnOnFlagDrift says when the labels (--labels, --zone, --region and the
// well-known ones) or --taints differ from the Node's: they are applied at
// registration only, since a node may not change what decides which
// Instances land on it.
func (a *Agent) warnOnFlagDrift(n *skiffv1alpha1.Node) {
	for k, v := range nodeLabels(a.cfg) {
		if n.Labels[k] != v {
			klog.InfoS("a label differs from the registered Node's; an admin changes it with kubectl label", "node", n.Name, "label", k, "want", v)
		}
	}
	if a.cfg.Taints != nil && taintsDrift(n.Spec.Taints, a.cfg.Taints) {
		klog.InfoS("--taints differ from the registered Node; an admin changes them with kubectl", "node", n.Name)
	}
}

// taintsDrift reports whether a Node's taints are not the --taints it was
// registered with, leaving out the control plane's own.
func taintsDrift(node, flags []skiffv1alpha1.Taint) bool {
	return !slices.EqualFunc(adminTaints(node), adminTaints(flags), sameTaint)
}

// adminTaints leaves out the taints the control plane puts on and takes
// off by itself (node.skiff.dev/...: unreachable, dead, no subnet yet).
func adminTaints(taints []skiffv1alpha1.Taint) []skiffv1alpha1.Taint {
	return slices.DeleteFunc(slices.Clone(taints), func(t skiffv1alpha1.Taint) bool {
		return strings.HasPrefix(t.Key, "node.skiff.dev/")
	})
}

// sameTaint compares key, value and effect (not when it was added).
func sameTaint(a, b skiffv1alpha1.Taint) bool {
	return a.Key == b.Key && a.Value == b.Value && a.Effect == b.Effect
}
