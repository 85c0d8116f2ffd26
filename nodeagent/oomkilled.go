package nodeagent

import (
	"skiff.dev/skiff/nodeagent/bundle"
	"skiff.dev/skiff/nodeagent/usage"
)

// terminatedReason is why the stopped container id ended, as the kubelet
// says it: OOMKilled when the kernel's OOM killer killed a process in its
// cgroup (any process, as containerd counts it: the one that died may be a
// child the main process waited for), else Completed or Error by its exit
// code. The cgroup is read while the container is stopped but not yet
// deleted, which is how the agent leaves it until a restart or the end of
// its Instance; a restart begins with a new cgroup and a new count.
// Simulated containers have no cgroup (r.cgroups nil) and are never
// OOMKilled.
func (r *instanceReconciler) terminatedReason(id string, exitCode int) string {
	if r.cgroups == nil {
		return exitReason(exitCode, 0)
	}
	return exitReason(exitCode, oomKills(*r.cgroups, id))
}

// oomKills is the count of OOM kills in the container's cgroup; 0 when it
// cannot be read (no cgroup: a simulated container, or one deleted).
func oomKills(cg usage.Cgroups, id string) uint64 {
	n, err := cg.OOMKills(bundle.CgroupsPath("", id))
	if err != nil {
		return 0
	}
	return n
}

// exitReason names a terminated state's reason.
func exitReason(exitCode int, oomKills uint64) string {
	switch {
	case oomKills > 0:
		return "OOMKilled"
	case exitCode != 0:
		return "Error"
	}
	return "Completed"
}
