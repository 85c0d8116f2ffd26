package shim

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Process identifies a process across pid reuse: its pid and its start
// time (in clock ticks since boot), as the shim records itself in PidFile.
type Process struct {
	Pid   int
	Start uint64
}

func (p Process) String() string { return fmt.Sprintf("%d %d", p.Pid, p.Start) }

// ParseProcess reads what String wrote.
func ParseProcess(s string) (Process, error) {
	var p Process
	if _, err := fmt.Sscanf(strings.TrimSpace(s), "%d %d", &p.Pid, &p.Start); err != nil {
		return Process{}, fmt.Errorf("shim process %q: %w", s, err)
	}
	return p, nil
}

// Self is this process.
func Self() (Process, error) {
	pid := os.Getpid()
	st, _, err := stat(pid)
	return Process{Pid: pid, Start: st}, err
}

// Alive reports whether the process still runs: a live process with that
// pid and the same start time (a pid reused after a reboot or a wrap is
// another process), not a zombie.
func (p Process) Alive() bool {
	start, state, err := stat(p.Pid)
	return err == nil && start == p.Start && state != 'Z'
}

// stat reads a process's start time and state from /proc/PID/stat.
func stat(pid int) (start uint64, state byte, err error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// pid (comm) state ppid ...: comm may hold spaces and parentheses, so
	// fields are counted after the last ')'. starttime is field 22.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: no comm", pid)
	}
	fields := strings.Fields(string(data[i+1:]))
	if len(fields) < 20 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields))
	}
	start, err = strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat starttime: %w", pid, err)
	}
	return start, fields[0][0], nil
}
