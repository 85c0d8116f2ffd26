package usage

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Node is what the whole machine has used.
type Node struct {
	// CPU is the CPU time spent outside the idle task, all CPUs together.
	CPU time.Duration
	// WorkingSet is memory in use, page cache included, less the
	// inactive file cache, in bytes: the kubelet's node working set.
	WorkingSet uint64
}

// userHZ is the unit of /proc/stat's times: USER_HZ, 100 on every Linux
// architecture the agent builds for.
const userHZ = 100

// ReadNode reads the machine's usage from procDir (/proc).
func ReadNode(procDir string) (Node, error) {
	cpu, err := busyCPU(filepath.Join(procDir, "stat"))
	if err != nil {
		return Node{}, err
	}
	mem, err := meminfo(filepath.Join(procDir, "meminfo"))
	if err != nil {
		return Node{}, err
	}
	total, free, inactive := mem["MemTotal"], mem["MemFree"], mem["Inactive(file)"]
	ws := uint64(0)
	if used := total - min(free, total); used > inactive {
		ws = used - inactive
	}
	return Node{CPU: cpu, WorkingSet: ws}, nil
}

// busyCPU sums the first line of /proc/stat ("cpu  user nice system idle
// iowait irq softirq steal guest guest_nice") but idle and iowait; guest
// time is already in user and nice.
func busyCPU(path string) (time.Duration, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	fields := strings.Fields(string(line))
	if len(fields) < 9 || fields[0] != "cpu" {
		return 0, fmt.Errorf("%s: no cpu line", path)
	}
	var ticks uint64
	for i, f := range fields[1:9] {
		n, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", path, err)
		}
		if i != 3 && i != 4 { // idle, iowait
			ticks += n
		}
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// meminfo reads /proc/meminfo's "Name:   123 kB" lines, in bytes.
func meminfo(path string) (map[string]uint64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", path, name, err)
		}
		if len(f) > 1 && f[1] == "kB" {
			n *= 1024
		}
		out[name] = n
	}
	if _, ok := out["MemTotal"]; !ok {
		return nil, fmt.Errorf("%s: no MemTotal", path)
	}
	return out, nil
}
