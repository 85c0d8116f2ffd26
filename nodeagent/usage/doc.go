// Package usage reads what containers and the node use: a container's CPU
// time, memory working set, processes and OOM kills from its cgroup
// (cgroup v2, or v1 on hosts that still mount it), and the node's CPU time
// and memory from /proc. It reads files only, at the moment it is asked:
// the agent's metrics collector calls it at scrape time, and its status
// pass asks whether a stopped container was OOM-killed.
//
//	cg := usage.HostCgroups()
//	c, err := cg.Container("/skiff/" + id) // the cgroupsPath of the container's spec
//
// The working set is the kubelet's: memory in use less the inactive file
// cache, which the kernel reclaims before it kills for want of memory.
package usage
