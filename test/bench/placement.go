package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// placementBench runs the scheduler's pure placement benchmark
// (BenchmarkPlacement in controllers/scheduler, the shape of Nomad's own:
// 5,000 nodes in 100 racks, 600 Instances) count times, and reports each
// case's placements/s and allocations per placement over the runs.
func placementBench(count int) ([]result, error) {
	cmd := exec.Command("go", "test", "-run", "^$", "-bench", "BenchmarkPlacement", "-benchtime", "5x",
		"-count", fmt.Sprint(count), "./controllers/scheduler")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go test -bench BenchmarkPlacement: %w\n%s", err, out)
	}
	rates := map[string][]float64{}
	allocs := map[string][]float64{}
	var order []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || !strings.HasPrefix(f[0], "BenchmarkPlacement/") {
			continue
		}
		name := strings.TrimPrefix(f[0], "BenchmarkPlacement/")
		name = name[:strings.LastIndex(name, "-")]
		if _, seen := rates[name]; !seen {
			order = append(order, name)
		}
		for i := 1; i+1 < len(f); i++ {
			var v float64
			if _, err := fmt.Sscan(f[i], &v); err != nil {
				continue
			}
			switch f[i+1] {
			case "placements/s":
				rates[name] = append(rates[name], v)
			case "allocs/placement":
				allocs[name] = append(allocs[name], v)
			}
		}
	}
	targets := map[string]string{"plain": ">= 5,000/s", "soft-spread": ">= 1,000/s", "hard-spread": ">= 1,000/s"}
	var res []result
	for _, name := range order {
		fmt.Fprintf(os.Stderr, "bench: placement %s: placements/s %v, allocs/placement %v\n", name, rates[name], allocs[name])
		res = append(res, result{
			name:   "placement, 5,000 nodes, 600 Instances, " + name,
			value:  fmt.Sprintf("%s/s, %s allocs", spread(rates[name], "%.0f"), spread(allocs[name], "%.0f")),
			target: targets[name],
		})
	}
	return res, nil
}

// spread is "min-max" of values, or the one value.
func spread(values []float64, format string) string {
	if len(values) == 0 {
		return "none"
	}
	lo, hi := values[0], values[0]
	for _, v := range values {
		lo, hi = min(lo, v), max(hi, v)
	}
	if lo == hi {
		return fmt.Sprintf(format, lo)
	}
	return fmt.Sprintf(format+"-"+format, lo, hi)
}
