package usage

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Container is what one container's cgroup has used.
type Container struct {
	// CPU is the CPU time its processes used, all CPUs together.
	CPU time.Duration
	// WorkingSet is its memory in use less the inactive file cache, in
	// bytes: what its memory limit is enforced against.
	WorkingSet uint64
	// Pids is how many processes (and threads) it holds.
	Pids uint64
}

// Cgroups is a cgroup file system, the unified hierarchy (v2) or v1's
// hierarchies side by side (cpuacct, memory, pids). It reads the paths
// runtimes are given as a spec's linux.cgroupsPath.
type Cgroups struct {
	root string
	v2   bool
}

// HostCgroups is the machine's, at /sys/fs/cgroup, where runc, crun and
// youki make containers' cgroups (with their cgroupfs driver).
func HostCgroups() Cgroups { return OpenCgroups("/sys/fs/cgroup") }

// OpenCgroups reads the cgroups mounted at root: v2 when root is the
// unified hierarchy (it holds cgroup.controllers), else v1. A hybrid host,
// with v2 mounted beside v1 at root/unified, is v1, as it is to runc.
func OpenCgroups(root string) Cgroups {
	_, err := os.Stat(filepath.Join(root, "cgroup.controllers"))
	return Cgroups{root: root, v2: err == nil}
}

// V2 reports whether the cgroups are v2's unified hierarchy.
func (c Cgroups) V2() bool { return c.v2 }

// Container reads the usage of the cgroup at path (such as /skiff/ID). A
// cgroup that does not exist, or no longer does, is an error for which
// errors.Is(err, fs.ErrNotExist) holds.
func (c Cgroups) Container(path string) (Container, error) {
	if c.v2 {
		return c.containerV2(path)
	}
	return c.containerV1(path)
}

func (c Cgroups) containerV2(path string) (Container, error) {
	dir := filepath.Join(c.root, path)
	usec, err := readKey(filepath.Join(dir, "cpu.stat"), "usage_usec")
	if err != nil {
		return Container{}, err
	}
	ws, err := workingSet(filepath.Join(dir, "memory.current"), filepath.Join(dir, "memory.stat"), "inactive_file")
	if err != nil {
		return Container{}, err
	}
	pids, err := pidsOf(filepath.Join(dir, "pids.current"), filepath.Join(dir, "cgroup.threads"))
	if err != nil {
		return Container{}, err
	}
	return Container{CPU: time.Duration(usec) * time.Microsecond, WorkingSet: ws, Pids: pids}, nil
}

func (c Cgroups) containerV1(path string) (Container, error) {
	ns, err := readUint(filepath.Join(c.root, "cpuacct", path, "cpuacct.usage"))
	if err != nil {
		return Container{}, err
	}
	mem := filepath.Join(c.root, "memory", path)
	// v1's memory.stat counts the cgroup's own pages unprefixed and its
	// subtree's with total_, which is what usage_in_bytes covers.
	ws, err := workingSet(filepath.Join(mem, "memory.usage_in_bytes"), filepath.Join(mem, "memory.stat"), "total_inactive_file")
	if err != nil {
		return Container{}, err
	}
	pids, err := pidsOf(filepath.Join(c.root, "pids", path, "pids.current"), filepath.Join(mem, "tasks"))
	if err != nil {
		return Container{}, err
	}
	return Container{CPU: time.Duration(ns), WorkingSet: ws, Pids: pids}, nil
}

// OOMKills is how many processes of the cgroup at path the kernel's OOM
// killer killed for want of memory within its limit (memory.events, or
// v1's memory.oom_control, oom_kill). The cgroup lives until the runtime
// deletes the container, so a stopped container still tells.
func (c Cgroups) OOMKills(path string) (uint64, error) {
	if c.v2 {
		return readKey(filepath.Join(c.root, path, "memory.events"), "oom_kill")
	}
	return readKey(filepath.Join(c.root, "memory", path, "memory.oom_control"), "oom_kill")
}

// workingSet is usage less the inactive file cache (key in stat), never
// below zero, as the kubelet (cAdvisor) reckons it.
func workingSet(usageFile, statFile, key string) (uint64, error) {
	usage, err := readUint(usageFile)
	if err != nil {
		return 0, err
	}
	inactive, err := readKey(statFile, key)
	if err != nil {
		return 0, err
	}
	if inactive > usage {
		return 0, nil
	}
	return usage - inactive, nil
}

// pidsOf reads the pids controller's count, or without the controller
// (--pids-limit 0 may leave it off) counts the tasks listed in tasks.
func pidsOf(current, tasks string) (uint64, error) {
	n, err := readUint(current)
	if !errors.Is(err, fs.ErrNotExist) {
		return n, err
	}
	data, err := os.ReadFile(tasks)
	if err != nil {
		return 0, err
	}
	return uint64(bytes.Count(data, []byte("\n"))), nil
}

// readUint reads a file holding one number.
func readUint(path string) (uint64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return n, nil
}

// readKey reads the value of key from a flat keyed file ("key value"
// lines: cpu.stat, memory.stat, memory.events).
func readKey(path, key string) (uint64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok || k != key {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s %s: %w", path, key, err)
		}
		return n, nil
	}
	return 0, fmt.Errorf("%s: no %s", path, key)
}
