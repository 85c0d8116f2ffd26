package bundle

import (
	"fmt"
	"slices"
	"strings"
)

// capabilityNames are the Linux capabilities by number: CAP_CHOWN is 0,
// CAP_CHECKPOINT_RESTORE (Linux 5.9) is 40.
var capabilityNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
	"CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
	"CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
	"CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// AllCapabilities returns every capability this package knows, in
// number order.
func AllCapabilities() []string { return slices.Clone(capabilityNames) }

// CapabilitiesOf names the capabilities set in mask, a capability set as
// /proc/PID/status prints it (CapEff, in hex); bits past the known
// capabilities are left out.
func CapabilitiesOf(mask uint64) []string {
	var out []string
	for bit, name := range capabilityNames {
		if mask&(1<<bit) != 0 {
			out = append(out, name)
		}
	}
	return out
}

// AllCapabilitiesName, in an add or drop list, stands for every capability.
const AllCapabilitiesName = "ALL"

// NormalizeCapability is name as a runtime spec names it: upper case with
// the CAP_ prefix (net_admin and NET_ADMIN are CAP_NET_ADMIN). ALL stays.
func NormalizeCapability(name string) string {
	name = strings.ToUpper(name)
	if name == AllCapabilitiesName || strings.HasPrefix(name, "CAP_") {
		return name
	}
	return "CAP_" + name
}

// ChangeCapabilities applies a security context's add and drop lists to
// base, as containerd's CRI plugin does: an ALL in add starts from all,
// an ALL in drop from nothing; then the named ones are added, then the
// named ones dropped (so drop wins over add). The result is in number
// order. A name that is no capability is an error naming every such one.
func ChangeCapabilities(base, all, add, drop []string) ([]string, error) {
	var unknown []string
	normalize := func(names []string) (out []string, hasAll bool) {
		for _, n := range names {
			c := NormalizeCapability(n)
			switch {
			case c == AllCapabilitiesName:
				hasAll = true
			case slices.Contains(capabilityNames, c):
				out = append(out, c)
			default:
				unknown = append(unknown, n)
			}
		}
		return out, hasAll
	}
	added, addAll := normalize(add)
	dropped, dropAll := normalize(drop)
	if len(unknown) > 0 {
		return nil, fmt.Errorf("unknown capabilities: %s", strings.Join(unknown, ", "))
	}
	set := map[string]bool{}
	switch {
	case dropAll:
	case addAll:
		for _, c := range all {
			set[NormalizeCapability(c)] = true
		}
	default:
		for _, c := range base {
			set[NormalizeCapability(c)] = true
		}
	}
	for _, c := range added {
		set[c] = true
	}
	for _, c := range dropped {
		delete(set, c)
	}
	out := []string{}
	for _, c := range capabilityNames {
		if set[c] {
			out = append(out, c)
		}
	}
	return out, nil
}
