package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"k8s.io/klog/v2"
)

// Config configures a node's Instance networking.
type Config struct {
	// PluginDir holds the CNI plugins' binaries (Debian's /usr/lib/cni).
	PluginDir string
	// DataDir holds the CNI configuration, the plugins' cache and address
	// leases, and the Instances' pinned namespaces.
	DataDir string
	// ClusterCIDR is every node's subnet together: traffic to it is not
	// masqueraded.
	ClusterCIDR netip.Prefix
	// Bridge is the node's bridge (skiff0).
	Bridge string
	// HostNetNS is the path of the node's network namespace; empty is the
	// agent's own.
	HostNetNS string
}

// DefaultPluginDir is where Debian's containernetworking-plugins installs.
const DefaultPluginDir = "/usr/lib/cni"

// DefaultBridge is the node's bridge.
const DefaultBridge = "skiff0"

// Plugins are the CNI plugins a node needs.
var Plugins = []string{"bridge", "host-local", "portmap", "loopback"}

// Directories and files under DataDir.
const (
	netnsDir     = "netns" // UID: the Instances' pinned namespaces
	cacheDir     = "cache" // libcni's results and configurations
	ipamDir      = "ipam"  // host-local's leases
	confFile     = "skiff.conflist"
	networkName  = "skiff"
	loopbackName = "skiff-loopback"
	cniVersion   = "1.0.0"
	ifName       = "eth0"
)

// CheckPlugins reports the first of Plugins missing from dir.
func CheckPlugins(dir string) error {
	for _, p := range Plugins {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			return fmt.Errorf("CNI plugin %s: %w (install them: apt-get install -y containernetworking-plugins, or point --cni-plugin-dir at them)", p, err)
		}
	}
	return nil
}

// ErrNoSubnet says the node has no instanceCIDR yet.
var ErrNoSubnet = errors.New("the node has no spec.instanceCIDR yet: the control plane gives one from its --cluster-cidr")

// Port is a hostPort to publish.
type Port struct {
	HostPort      int32
	ContainerPort int32
	// Protocol is TCP, UDP or SCTP.
	Protocol string
	// HostIP is the node address to publish on; empty is every one.
	HostIP string
}

// Attachment is an Instance's network: its namespace and address.
type Attachment struct {
	NetNS string
	IP    netip.Addr
}

// Manager sets up and tears down Instances' networks on one node, and
// keeps the node's routes and rules.
type Manager struct {
	cfg      Config
	cni      *libcni.CNIConfig
	loopback *libcni.NetworkConfigList

	mu     sync.Mutex
	subnet netip.Prefix
	// conf is the chain for Instances without hostPorts; portsConf adds
	// portmap, a process and a few iptables runs that the others need not
	// pay for.
	conf, portsConf *libcni.NetworkConfigList
	// known caches attachments, so a pass over a running Instance reads
	// no file.
	known map[string]Attachment
	// published holds the hostPorts of every Instance with a network on
	// the node (read from the plugins' cache at start).
	published map[string][]Port
	// locks serializes setup and teardown per Instance.
	locks keyLocks
}

// New checks the plugins and prepares the data directory.
func New(cfg Config) (*Manager, error) {
	if cfg.Bridge == "" {
		cfg.Bridge = DefaultBridge
	}
	if !cfg.ClusterCIDR.IsValid() || !cfg.ClusterCIDR.Addr().Is4() {
		return nil, fmt.Errorf("cluster CIDR %s: must be an IPv4 network", cfg.ClusterCIDR)
	}
	if err := CheckPlugins(cfg.PluginDir); err != nil {
		return nil, err
	}
	for _, d := range []string{netnsDir, cacheDir, ipamDir} {
		if err := os.MkdirAll(filepath.Join(cfg.DataDir, d), 0o700); err != nil {
			return nil, fmt.Errorf("network data dir: %w", err)
		}
	}
	loopback, err := libcni.ConfListFromBytes([]byte(`{"cniVersion":"` + cniVersion + `","name":"` + loopbackName + `","plugins":[{"type":"loopback"}]}`))
	if err != nil {
		return nil, err
	}
	m := &Manager{
		cfg:       cfg,
		cni:       libcni.NewCNIConfigWithCacheDir([]string{cfg.PluginDir}, filepath.Join(cfg.DataDir, cacheDir), nil),
		loopback:  loopback,
		known:     map[string]Attachment{},
		published: map[string][]Port{},
	}
	ids, err := m.Attached()
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if _, rt, err := m.cni.GetNetworkListCachedConfig(cacheKey, m.runtimeConf(id, m.netnsPath(id), nil)); err == nil && rt != nil {
			m.published[id] = portsOf(rt.CapabilityArgs)
		}
	}
	return m, nil
}

// cacheKey finds the chain's cached results and configurations: libcni
// keys them by network name (and version) and container.
var cacheKey = &libcni.NetworkConfigList{Name: networkName, CNIVersion: cniVersion}

// portsOf reads the port mappings back from cached runtime arguments.
func portsOf(args map[string]any) []Port {
	list, _ := args["portMappings"].([]any)
	var out []Port
	for _, item := range list {
		pm, _ := item.(map[string]any)
		host, _ := pm["hostPort"].(float64)
		container, _ := pm["containerPort"].(float64)
		protocol, _ := pm["protocol"].(string)
		ip, _ := pm["hostIP"].(string)
		out = append(out, Port{HostPort: int32(host), ContainerPort: int32(container), Protocol: strings.ToUpper(protocol), HostIP: ip})
	}
	return out
}

// PortConflictError says a hostPort is published on the node already.
type PortConflictError struct {
	Port Port
	// Holder is the UID of the Instance that publishes it.
	Holder string
}

func (e *PortConflictError) Error() string {
	on := "every address"
	if e.Port.HostIP != "" {
		on = e.Port.HostIP
	}
	return fmt.Sprintf("host port %d/%s on %s is published on this node by Instance %s", e.Port.HostPort, e.Port.Protocol, on, e.Holder)
}

// conflict finds a port of ports that another Instance publishes.
func (m *Manager) conflict(id string, ports []Port) error {
	wildcard := func(ip string) bool { return ip == "" || ip == "0.0.0.0" || ip == "::" }
	for other, theirs := range m.published {
		if other == id {
			continue
		}
		for _, p := range ports {
			for _, q := range theirs {
				if p.HostPort == q.HostPort && strings.EqualFold(p.Protocol, q.Protocol) &&
					(wildcard(p.HostIP) || wildcard(q.HostIP) || p.HostIP == q.HostIP) {
					return &PortConflictError{Port: p, Holder: other}
				}
			}
		}
	}
	return nil
}

// Subnet is the node's instanceCIDR, once SetSubnet has been called.
func (m *Manager) Subnet() netip.Prefix {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.subnet
}

// SetSubnet gives the node its instanceCIDR: it writes the CNI
// configuration and the node's forwarding and masquerade rules. Calling it
// again with the same subnet only repairs the rules.
func (m *Manager) SetSubnet(subnet netip.Prefix) error {
	if !subnet.IsValid() || !subnet.Addr().Is4() {
		return fmt.Errorf("instance CIDR %s: must be an IPv4 network", subnet)
	}
	if !m.cfg.ClusterCIDR.Contains(subnet.Addr()) || subnet.Bits() < m.cfg.ClusterCIDR.Bits() {
		// Its Instances' traffic to each other would be masqueraded.
		klog.InfoS("the node's instance CIDR is not inside --cluster-cidr: Instances' traffic to other nodes is masqueraded", "instanceCIDR", subnet, "clusterCIDR", m.cfg.ClusterCIDR)
	}
	m.mu.Lock()
	current := m.subnet
	m.mu.Unlock()
	if current.IsValid() && current != subnet {
		return fmt.Errorf("instance CIDR %s: the node already has %s", subnet, current)
	}
	// The rules first: no Instance starts before its traffic is forwarded
	// and masqueraded.
	err := inNetNS(m.cfg.HostNetNS, func() error {
		if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
			return fmt.Errorf("enable forwarding: %w", err)
		}
		return ensureRules(subnet, m.cfg.ClusterCIDR)
	})
	if err != nil || current.IsValid() {
		return err
	}
	raw, err := m.confList(subnet, true)
	if err != nil {
		return err
	}
	portsConf, err := libcni.ConfListFromBytes(raw)
	if err != nil {
		return fmt.Errorf("CNI configuration: %w", err)
	}
	// Written for people and other CNI tools; skiff keeps its own copy.
	if err := os.WriteFile(filepath.Join(m.cfg.DataDir, confFile), raw, 0o600); err != nil {
		return fmt.Errorf("CNI configuration: %w", err)
	}
	if raw, err = m.confList(subnet, false); err != nil {
		return err
	}
	conf, err := libcni.ConfListFromBytes(raw)
	if err != nil {
		return fmt.Errorf("CNI configuration: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.subnet, m.conf, m.portsConf = subnet, conf, portsConf
	return nil
}

// confList is the node's CNI chain (written to the data dir with
// portmap): the bridge with host-local addresses in the node's subnet (a
// default route through the bridge), then portmap for hostPorts. The
// loopback plugin runs beside it. Masquerading is the node's own rule
// (ensureRules): the bridge's would hide Instances' addresses from other
// nodes too.
func (m *Manager) confList(subnet netip.Prefix, portmap bool) ([]byte, error) {
	plugins := []map[string]any{{
		"type": "bridge", "bridge": m.cfg.Bridge, "isGateway": true, "ipMasq": false, "hairpinMode": true,
		"ipam": map[string]any{
			"type":    "host-local",
			"ranges":  [][]map[string]string{{{"subnet": subnet.String()}}},
			"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
			"dataDir": filepath.Join(m.cfg.DataDir, ipamDir),
		},
	}}
	if portmap {
		plugins = append(plugins, map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}, "snat": true})
	}
	return json.MarshalIndent(map[string]any{"cniVersion": cniVersion, "name": networkName, "plugins": plugins}, "", "  ")
}

// cniTimeout bounds one plugin chain run.
const cniTimeout = time.Minute

func (m *Manager) netnsPath(id string) string { return filepath.Join(m.cfg.DataDir, netnsDir, id) }

// NetNS is the path of the network namespace of Instance id (which may
// not exist: it is made by Setup and removed by Teardown).
func (m *Manager) NetNS(id string) string { return m.netnsPath(id) }

func (m *Manager) runtimeConf(id, nsPath string, ports []Port) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{ContainerID: id, NetNS: nsPath, IfName: ifName}
	if len(ports) > 0 {
		mappings := make([]map[string]any, 0, len(ports))
		for _, p := range ports {
			pm := map[string]any{"hostPort": p.HostPort, "containerPort": p.ContainerPort, "protocol": strings.ToLower(p.Protocol)}
			if p.HostIP != "" {
				pm["hostIP"] = p.HostIP
			}
			mappings = append(mappings, pm)
		}
		rt.CapabilityArgs = map[string]any{"portMappings": mappings}
	}
	return rt
}

// Setup gives the Instance id (its UID) a network namespace and an
// address, publishing ports. It is idempotent: an Instance that has a
// network keeps it (after an agent restart too, from the plugins' cache).
func (m *Manager) Setup(ctx context.Context, id string, ports []Port) (Attachment, error) {
	unlock := m.locks.lock(id)
	defer unlock()
	m.mu.Lock()
	att, ok := m.known[id]
	conf := m.conf
	if len(ports) > 0 {
		conf = m.portsConf
	}
	m.mu.Unlock()
	if ok {
		return att, nil
	}
	nsPath := m.netnsPath(id)
	rt := m.runtimeConf(id, nsPath, ports)
	if _, err := os.Stat(nsPath); err == nil {
		// Set up before (this agent's earlier run): the plugins' cache
		// has it, whether or not the node's subnet is known yet. After a
		// reboot the file is there but no namespace is pinned on it: the
		// network is gone and is made again.
		if isNetNS(nsPath) {
			if res, err := m.cni.GetNetworkListCachedResult(cacheKey, rt); err == nil && res != nil {
				if att, err := attachment(nsPath, res); err == nil {
					m.remember(id, att, ports)
					return att, nil
				}
			}
		}
		// A setup that did not finish, or lost to a reboot: release what
		// is left and start again from nothing.
		if err := m.teardownWithin(ctx, id, nil, nil); err != nil {
			return Attachment{}, err
		}
	}
	if conf == nil {
		return Attachment{}, ErrNoSubnet
	}
	// Claim the ports before the plugins run, so that two Instances set
	// up at once cannot both take one.
	m.mu.Lock()
	err := m.conflict(id, ports)
	if err == nil {
		m.published[id] = ports
	}
	m.mu.Unlock()
	if err != nil {
		return Attachment{}, err
	}
	if err := newNetNS(nsPath); err != nil {
		m.forget(id)
		return Attachment{}, err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cniTimeout)
	defer cancel()
	// The loopback plugin works inside the Instance's namespace only, so
	// it runs beside the chain rather than before it.
	loErr := make(chan error, 1)
	go func() {
		_, err := m.cni.AddNetworkList(ctx, m.loopback, m.loopbackConf(id, nsPath))
		loErr <- err
	}()
	var res types.Result
	err = inNetNS(m.cfg.HostNetNS, func() error {
		var err error
		res, err = m.cni.AddNetworkList(ctx, conf, rt)
		return err
	})
	err = errors.Join(err, <-loErr)
	if err == nil {
		att, err = attachment(nsPath, res)
	}
	if err != nil {
		// What the plugins did before failing is undone with the chain
		// and port mappings they ran with, in time of its own.
		return Attachment{}, errors.Join(err, m.teardownWithin(ctx, id, conf, rt))
	}
	m.remember(id, att, ports)
	return att, nil
}

func (m *Manager) remember(id string, att Attachment, ports []Port) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.known[id] = att
	m.published[id] = ports
}

func (m *Manager) forget(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.known, id)
	delete(m.published, id)
}

func (m *Manager) loopbackConf(id, nsPath string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: id, NetNS: nsPath, IfName: "lo"}
}

// attachment reads the Instance's address off the chain's result: the
// first IPv4 address of its interface.
func attachment(nsPath string, res types.Result) (Attachment, error) {
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return Attachment{}, fmt.Errorf("CNI result: %w", err)
	}
	for _, ipc := range r.IPs {
		if ipc.Interface != nil && (*ipc.Interface >= len(r.Interfaces) || r.Interfaces[*ipc.Interface].Sandbox == "") {
			continue
		}
		if ip, ok := netip.AddrFromSlice(ipc.Address.IP.To4()); ok && ipc.Address.IP.To4() != nil {
			return Attachment{NetNS: nsPath, IP: ip}, nil
		}
	}
	return Attachment{}, fmt.Errorf("CNI result for %s has no IPv4 address", nsPath)
}

// Teardown releases the Instance's network: CNI DEL (its address, port
// mappings and rules) with the configuration it was set up with, then
// its namespace. An Instance without a network is fine.
func (m *Manager) Teardown(ctx context.Context, id string) error {
	unlock := m.locks.lock(id)
	defer unlock()
	return m.teardownWithin(ctx, id, nil, nil)
}

// teardownWithin runs teardown in time of its own: ctx may have run out
// (a timed-out setup) and what is left must still go.
func (m *Manager) teardownWithin(ctx context.Context, id string, conf *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cniTimeout)
	defer cancel()
	return m.teardown(ctx, id, conf, rt)
}

// teardown undoes id's network. The chain and runtime arguments are the
// ones its setup cached, else conf and rt (a setup that failed before the
// cache was written), else the node's chain.
func (m *Manager) teardown(ctx context.Context, id string, conf *libcni.NetworkConfigList, rt *libcni.RuntimeConf) (err error) {
	m.mu.Lock()
	delete(m.known, id)
	if conf == nil {
		conf = m.conf
	}
	m.mu.Unlock()
	defer func() {
		if err == nil {
			m.forget(id) // its ports are free once the rules are gone
		}
	}()
	nsPath := m.netnsPath(id)
	if rt == nil {
		rt = m.runtimeConf(id, nsPath, nil)
	}
	raw, cachedRT, err := m.cni.GetNetworkListCachedConfig(cacheKey, rt)
	cached := err == nil && raw != nil
	if cached {
		if c, err := libcni.ConfListFromBytes(raw); err == nil {
			conf = c
			if cachedRT != nil {
				rt.CapabilityArgs = cachedRT.CapabilityArgs
			}
		}
	}
	_, statErr := os.Stat(nsPath)
	if !isNetNS(nsPath) {
		// Without its namespace (gone, or lost to a reboot) the plugins
		// still release the address and the rules: bridge and portmap
		// accept an empty netns on DEL.
		rt.NetNS = ""
	}
	if !cached && statErr != nil {
		// Never set up as far as the plugins know, and no namespace:
		// nothing to undo.
		return nil
	}
	err = inNetNS(m.cfg.HostNetNS, func() error {
		if conf != nil {
			if err := m.cni.DelNetworkList(ctx, conf, rt); err != nil {
				return err
			}
		}
		return m.cni.DelNetworkList(ctx, m.loopback, m.loopbackConf(id, rt.NetNS))
	})
	if err != nil {
		return fmt.Errorf("network of %s: %w", id, err)
	}
	return removeNetNS(nsPath)
}

// Attached lists the Instances (UIDs) that have a network on this node.
func (m *Manager) Attached() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(m.cfg.DataDir, netnsDir))
	if err != nil {
		return nil, fmt.Errorf("network namespaces: %w", err)
	}
	ids := make([]string, 0, len(entries))
	for _, e := range entries {
		ids = append(ids, e.Name())
	}
	return ids, nil
}

// keyLocks is a mutex per key.
type keyLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	sync.Mutex
	refs int
}

func (k *keyLocks) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyLock{}
	}
	l := k.m[key]
	if l == nil {
		l = &keyLock{}
		k.m[key] = l
	}
	l.refs++
	k.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}
