package nodeagent

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/nodeagent/network"
	"skiff.dev/skiff/version"
)

// Machine is what the agent reads about its host.
type Machine struct {
	Capacity  corev1.ResourceList
	Addresses []skiffv1alpha1.NodeAddress
	Info      skiffv1alpha1.NodeInfo
	// Endpoint is the agent's HTTPS address, host:port.
	Endpoint string
	// GossipAddress is the agent's gossip address, ip:port (empty with
	// gossip off).
	GossipAddress string
	// OOMFloor is the lowest oom_score_adj the agent may give a container
	// (ownOOMFloor).
	OOMFloor int
}

// readMachine reads capacity (cpu in millicores, memory and the data
// directory's file system in bytes, instance slots), addresses and software.
func readMachine(dataDir string, maxInstances int64, netns string) (*Machine, error) {
	mem, err := memTotal()
	if err != nil {
		return nil, err
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(dataDir, &fs); err != nil {
		return nil, fmt.Errorf("statfs %q: %w", dataDir, err)
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	// The node's addresses are those of the namespace its Instances'
	// networking lives in.
	var addrs []skiffv1alpha1.NodeAddress
	if err := network.InNetNS(netns, func() error { addrs = addresses(); return nil }); err != nil {
		return nil, err
	}
	return &Machine{
		Capacity: corev1.ResourceList{
			corev1.ResourceCPU:              *resource.NewMilliQuantity(int64(runtime.NumCPU())*1000, resource.DecimalSI),
			corev1.ResourceMemory:           *resource.NewQuantity(mem, resource.BinarySI),
			corev1.ResourceEphemeralStorage: *resource.NewQuantity(int64(fs.Blocks)*fs.Bsize, resource.BinarySI),
			corev1.ResourcePods:             *resource.NewQuantity(maxInstances, resource.DecimalSI),
		},
		Addresses: addrs,
		OOMFloor:  ownOOMFloor(),
		Info: skiffv1alpha1.NodeInfo{
			AgentVersion:    version.Version,
			OperatingSystem: runtime.GOOS,
			Architecture:    runtime.GOARCH,
			KernelVersion:   strings.TrimSpace(string(kernel)),
		},
	}, nil
}

func memTotal() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/meminfo: %w", err)
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("/proc/meminfo: no MemTotal")
}

// addresses lists the host name and the non-loopback unicast addresses.
func addresses() []skiffv1alpha1.NodeAddress {
	var out []skiffv1alpha1.NodeAddress
	if host, err := os.Hostname(); err == nil {
		out = append(out, skiffv1alpha1.NodeAddress{Type: skiffv1alpha1.NodeHostName, Address: host})
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.IsGlobalUnicast() {
			out = append(out, skiffv1alpha1.NodeAddress{Type: skiffv1alpha1.NodeInternalIP, Address: ipn.IP.String()})
		}
	}
	return out
}

// allocatable is capacity minus what is reserved, never below zero.
func allocatable(capacity, reserved corev1.ResourceList) corev1.ResourceList {
	out := corev1.ResourceList{}
	for name, q := range capacity {
		q = q.DeepCopy()
		if r, ok := reserved[name]; ok {
			q.Sub(r)
			if q.Sign() < 0 {
				q = *resource.NewQuantity(0, q.Format)
			}
		}
		out[name] = q
	}
	return out
}

// hostIP is the first internal address, the one Instances report.
func (m *Machine) hostIP() string {
	for _, a := range m.Addresses {
		if a.Type == skiffv1alpha1.NodeInternalIP {
			return a.Address
		}
	}
	return ""
}
