package bundle

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Input is what one container needs.
type Input struct {
	// ID names the container; it is also the cgroup leaf.
	ID string
	// Rootfs is the root file system directory.
	Rootfs string
	// Args, Env and Cwd start the process; Cwd defaults to /.
	Args []string
	Env  []string
	Cwd  string
	// UID and GID run the process.
	UID, GID uint32
	// Hostname of the container.
	Hostname string
	// CPUShares, CPUQuota (microseconds per CPUPeriod) and MemoryLimit
	// (bytes) are cgroup limits; zero means unlimited.
	CPUShares   uint64
	CPUQuota    int64
	MemoryLimit int64
	// PidsLimit caps the processes in the container.
	PidsLimit int64
	// CgroupParent is the parent cgroup path, e.g. /skiff.
	CgroupParent string
	// HostNetwork shares the node's network namespace.
	HostNetwork bool
	// NetNS is the path of a network namespace to join: the Instance's
	// own, which its containers share, or with HostNetwork the node's when
	// that is not the runtime's own. Empty without HostNetwork is a new
	// namespace with loopback only.
	NetNS string
	// OOMScoreAdj is the process's oom_score_adj (-1000 to 1000), so the
	// kernel's OOM killer picks containers by QoS, not the agent's value
	// they would inherit.
	OOMScoreAdj int
	// Mounts are the container's volumes, bind-mounted in order before
	// Files (so that a volume at /etc does not hide /etc/hosts).
	Mounts []Mount
	// AdditionalGids are groups the process belongs to besides GID (an
	// Instance's fsGroup).
	AdditionalGids []uint32
	// Files are host files bind-mounted read-only into the container,
	// such as the Instance's /etc/hosts and /etc/resolv.conf.
	Files []File
	// Unconfined runs the process without a seccomp filter, as a
	// seccompProfile of type Unconfined does; capabilities and the other
	// hardening still apply. By default the process gets DefaultSeccomp.
	Unconfined bool
	// Capabilities, when not nil, replace DefaultCapabilities as the
	// process's bounding, permitted and effective sets (ChangeCapabilities
	// makes them from a security context's add and drop); empty is none.
	Capabilities []string
	// ReadonlyRootfs mounts the root file system read-only. The mounts
	// over it keep their own modes: /dev, /dev/shm and a writable File
	// stay writable, as in Kubernetes (no writable /tmp is added).
	ReadonlyRootfs bool
	// AllowPrivilegeEscalation turns no_new_privs off, so that setuid
	// binaries and file capabilities raise privileges again.
	AllowPrivilegeEscalation bool
	// Privileged gives up the hardening, as containerd's privileged
	// containers do: every capability (Capabilities, else all known), no
	// seccomp filter, no masked or read-only paths, /sys and the cgroup
	// file system writable, every device allowed and Devices created,
	// and no_new_privs off.
	Privileged bool
	// Devices are device nodes made in a privileged container: the node's
	// own (HostDevices). They are ignored otherwise.
	Devices []specs.LinuxDevice
}

// CPUPeriod is the CFS period quotas are expressed against (100 ms).
const CPUPeriod uint64 = 100000

// DefaultCapabilities are containerd's defaults; every other is dropped.
var DefaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// MaskedPaths hide kernel information from the container.
var MaskedPaths = []string{
	"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
	"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
	"/sys/firmware", "/sys/devices/virtual/powercap",
}

// ReadonlyPaths are kernel interfaces the container may read, not write.
var ReadonlyPaths = []string{
	"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
}

// NoFileLimit is the RLIMIT_NOFILE of every container process, as in
// containerd's default spec.
const NoFileLimit = 1024

// Spec returns the hardened runtime spec for in.
func Spec(in Input) *specs.Spec {
	caps := in.capabilities()
	cwd := in.Cwd
	if cwd == "" {
		cwd = "/"
	}
	s := &specs.Spec{
		Version:  specs.Version,
		Hostname: in.Hostname,
		Root:     &specs.Root{Path: in.Rootfs, Readonly: in.ReadonlyRootfs},
		Process: &specs.Process{
			Args: in.Args, Env: in.Env, Cwd: cwd,
			User:            specs.User{UID: in.UID, GID: in.GID, AdditionalGids: in.AdditionalGids},
			NoNewPrivileges: !in.AllowPrivilegeEscalation && !in.Privileged,
			OOMScoreAdj:     &in.OOMScoreAdj,
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps,
			},
			Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: NoFileLimit, Soft: NoFileLimit}},
		},
		Mounts: slices.Concat(defaultMounts(), volumeMounts(in.Mounts), fileMounts(in.Files)),
		Linux: &specs.Linux{
			Namespaces:    namespaces(in.HostNetwork, in.NetNS),
			CgroupsPath:   CgroupsPath(in.CgroupParent, in.ID),
			Resources:     resources(in),
			MaskedPaths:   append([]string(nil), MaskedPaths...),
			ReadonlyPaths: append([]string(nil), ReadonlyPaths...),
		},
	}
	if in.Privileged {
		unharden(s, in.Devices)
	}
	if !in.Unconfined && !in.Privileged {
		s.Linux.Seccomp = seccompOrDenyAll(s)
	}
	return s
}

// CgroupsPath is the cgroup of the container id under parent (empty:
// /skiff), as its spec names it: where its usage is read.
func CgroupsPath(parent, id string) string {
	return filepath.Join(cgroupParent(parent), id)
}

func cgroupParent(p string) string {
	if p == "" {
		return "/skiff"
	}
	return p
}

func namespaces(hostNetwork bool, netns string) []specs.LinuxNamespace {
	ns := []specs.LinuxNamespace{
		{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}, {Type: specs.MountNamespace},
	}
	switch {
	case netns != "":
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: netns})
	case !hostNetwork:
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	}
	return ns
}

func defaultMounts() []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
	}
}

// Mount is a host directory or file (Source) shown at Destination.
type Mount struct {
	Source, Destination string
	ReadOnly            bool
}

func volumeMounts(mounts []Mount) []specs.Mount {
	var out []specs.Mount
	for _, m := range mounts {
		mode := "rw"
		if m.ReadOnly {
			mode = "ro"
		}
		out = append(out, specs.Mount{Destination: m.Destination, Type: "bind", Source: m.Source,
			Options: []string{"rbind", "rprivate", mode}})
	}
	return out
}

// File is a host file (Source) shown read-only at Destination.
type File struct {
	Source, Destination string
	// Writable lets the container write the file (its termination
	// message); files are read-only otherwise.
	Writable bool
}

func fileMounts(files []File) []specs.Mount {
	var out []specs.Mount
	for _, f := range files {
		mode := "ro"
		if f.Writable {
			mode = "rw"
		}
		out = append(out, specs.Mount{Destination: f.Destination, Type: "bind", Source: f.Source,
			Options: []string{"rbind", mode, "nosuid", "nodev", "noexec"}})
	}
	return out
}

// standardDevices are the character devices every container may use.
var standardDevices = []struct{ major, minor int64 }{
	{1, 3}, {1, 5}, {1, 7}, {1, 8}, {1, 9}, // null, zero, full, random, urandom
	{5, 0}, {5, 2}, {136, -1}, // tty, ptmx, pts
}

func resources(in Input) *specs.LinuxResources {
	r := &specs.LinuxResources{
		Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
	}
	for _, d := range standardDevices {
		major, minor := d.major, d.minor
		dev := specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: &major, Access: "rwm"}
		if minor >= 0 {
			dev.Minor = &minor
		}
		r.Devices = append(r.Devices, dev)
	}
	if in.CPUShares > 0 || in.CPUQuota > 0 {
		r.CPU = &specs.LinuxCPU{}
		if in.CPUShares > 0 {
			r.CPU.Shares = &in.CPUShares
		}
		if in.CPUQuota > 0 {
			period := CPUPeriod
			r.CPU.Quota, r.CPU.Period = &in.CPUQuota, &period
		}
	}
	if in.MemoryLimit > 0 {
		r.Memory = &specs.LinuxMemory{Limit: &in.MemoryLimit}
	}
	if in.PidsLimit > 0 {
		r.Pids = &specs.LinuxPids{Limit: &in.PidsLimit}
	}
	return r
}

// CPUShares converts a cpu request in millicores to cgroup shares (1024
// per core, at least 2), as the kubelet does.
func CPUShares(milli int64) uint64 {
	shares := milli * 1024 / 1000
	if shares < 2 {
		shares = 2
	}
	return uint64(shares)
}

// CPUQuota converts a cpu limit in millicores to a quota per CPUPeriod.
func CPUQuota(milli int64) int64 {
	return milli * int64(CPUPeriod) / 1000
}

// Write writes spec as dir/config.json.
func Write(dir string, spec *specs.Spec) error {
	data, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return fmt.Errorf("bundle %q: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("bundle %q: %w", dir, err)
	}
	return os.WriteFile(filepath.Join(dir, "config.json"), data, 0o600)
}
