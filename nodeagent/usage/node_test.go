package usage

import (
	"testing"
	"time"
)

func TestReadNode(t *testing.T) {
	proc := t.TempDir()
	writeFiles(t, proc, map[string]string{
		// user nice system idle iowait irq softirq steal guest guest_nice
		"stat":    "cpu  1000 50 400 90000 300 20 30 0 100 0\ncpu0 500 25 200 45000 150 10 15 0 50 0\nintr 1\n",
		"meminfo": "MemTotal:        8000000 kB\nMemFree:         3000000 kB\nMemAvailable:    6000000 kB\nInactive(file):  1000000 kB\n",
	})
	got, err := ReadNode(proc)
	want := Node{CPU: 15 * time.Second, WorkingSet: 4000000 * 1024}
	if err != nil || got != want {
		t.Errorf("ReadNode: %+v %v, want %+v", got, err, want)
	}

	writeFiles(t, proc, map[string]string{"stat": "intr 1\n"})
	if _, err := ReadNode(proc); err == nil {
		t.Error("a /proc/stat without its cpu line read")
	}
}

// TestReadNodeHere reads this machine's /proc.
func TestReadNodeHere(t *testing.T) {
	n, err := ReadNode("/proc")
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	if n.CPU <= 0 || n.WorkingSet == 0 {
		t.Errorf("this machine: %+v, want some CPU time and memory in use", n)
	}
}
