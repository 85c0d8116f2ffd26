package main

import (
	"fmt"
	"os"
	"time"
)

// bindsBench measures the scheduler in kube-scheduler's scheduler_perf
// shape, the shape of its CI floor of 680 pods/s at 5,000 nodes: every
// node Ready and renewing its Lease, Instances created (here by the
// Workload controller) while the scheduler binds them, and no node
// starting what is bound to it. The simulated containers take a day to
// start, so no agent writes an Instance's status during the burst: the
// control plane's CPU goes to creates, binds and their watches. With a
// profile path, the server's CPU is profiled over the burst's first 8 s.
func bindsBench(bin string, n, workloads, replicas int, profile string) ([]result, error) {
	lc, err := startLoadedCluster(bin, n, "--sim-start-delay", "24h")
	if err != nil {
		return nil, err
	}
	defer lc.close()
	profiled := lc.api.startProfile(profile, 8)
	t0 := time.Now()
	if err := lc.apply(workloads, replicas); err != nil {
		return nil, err
	}
	total := workloads * replicas
	b, err := lc.follow(t0, total, true)
	if err != nil {
		return nil, err
	}
	allBound := time.Since(t0)
	cpu := cpuSeconds(lc.srv.cmd.Process.Pid) - lc.cpu0
	if err := profiled(); err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	fleetCPU := cpuSeconds(lc.fleet.Process.Pid) - lc.fleetCPU0
	writes, err := lc.api.writeCounts()
	if err != nil {
		return nil, err
	}
	label := fmt.Sprintf("scheduler_perf shape, %d nodes, %dx%d, nothing started", n, workloads, replicas)
	res := []result{
		{label + ": scheduler binds/s", fmt.Sprintf("%.0f", b.bindsPerSecond(total)), "kube-scheduler's CI floor: 680 at 5000 nodes"},
		{label + ": all bound", fmt.Sprintf("%.1f s", allBound.Seconds()), ""},
		{label + ": control plane CPU", fmt.Sprintf("%.1f s (%.1f ms per Instance)", cpu, cpu*1000/float64(total)), ""},
		{label + ": API writes per Instance", writesPer(lc.writes0, writes, total), ""},
		{label + ": fleet CPU", fmt.Sprintf("%.1f s", fleetCPU), ""},
	}
	for _, r := range res {
		fmt.Fprintf(os.Stderr, "bench: %s: %s\n", r.name, r.value)
	}
	return res, nil
}
