package usage

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writeFiles makes files (path relative to root: content) under root.
func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCgroupsV2(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"cgroup.controllers":          "cpu memory pids\n",
		"skiff/c1/cpu.stat":           "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n",
		"skiff/c1/memory.current":     "50000000\n",
		"skiff/c1/memory.stat":        "anon 30000000\nfile 20000000\nactive_file 8000000\ninactive_file 12000000\n",
		"skiff/c1/pids.current":       "3\n",
		"skiff/c1/memory.events":      "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0\n",
		"skiff/nopids/cpu.stat":       "usage_usec 1\n",
		"skiff/nopids/memory.current": "100\n",
		"skiff/nopids/memory.stat":    "inactive_file 400\n", // more than the usage: clamped
		"skiff/nopids/cgroup.threads": "41\n42\n",
	})
	cg := OpenCgroups(root)
	if !cg.V2() {
		t.Fatal("a root with cgroup.controllers is v2")
	}
	got, err := cg.Container("/skiff/c1")
	want := Container{CPU: 2500 * time.Millisecond, WorkingSet: 38000000, Pids: 3}
	if err != nil || got != want {
		t.Errorf("c1: %+v %v, want %+v", got, err, want)
	}
	if kills, err := cg.OOMKills("/skiff/c1"); err != nil || kills != 1 {
		t.Errorf("c1 OOM kills: %d %v, want 1", kills, err)
	}
	got, err = cg.Container("/skiff/nopids")
	want = Container{CPU: time.Microsecond, WorkingSet: 0, Pids: 2}
	if err != nil || got != want {
		t.Errorf("nopids: %+v %v, want %+v", got, err, want)
	}
	if _, err := cg.Container("/skiff/gone"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a cgroup that is gone: %v, want fs.ErrNotExist", err)
	}
	if _, err := cg.OOMKills("/skiff/gone"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OOM kills of a cgroup that is gone: %v, want fs.ErrNotExist", err)
	}
}

func TestCgroupsV1(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"unified/cgroup.controllers":            "", // hybrid: v2 beside v1 is not v2
		"cpuacct/skiff/c1/cpuacct.usage":        "1500000000\n",
		"memory/skiff/c1/memory.usage_in_bytes": "40000000\n",
		"memory/skiff/c1/memory.stat":           "cache 9000000\ninactive_file 1000\ntotal_cache 9000000\ntotal_inactive_file 5000000\n",
		"memory/skiff/c1/memory.oom_control":    "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
		"pids/skiff/c1/pids.current":            "7\n",
	})
	cg := OpenCgroups(root)
	if cg.V2() {
		t.Fatal("a root without cgroup.controllers is v1")
	}
	got, err := cg.Container("/skiff/c1")
	want := Container{CPU: 1500 * time.Millisecond, WorkingSet: 35000000, Pids: 7}
	if err != nil || got != want {
		t.Errorf("c1: %+v %v, want %+v", got, err, want)
	}
	if kills, err := cg.OOMKills("/skiff/c1"); err != nil || kills != 2 {
		t.Errorf("c1 OOM kills: %d %v, want 2", kills, err)
	}
	if _, err := cg.Container("/skiff/gone"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a cgroup that is gone: %v, want fs.ErrNotExist", err)
	}
}

func TestCgroupsMalformed(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"cgroup.controllers":    "",
		"bad/cpu.stat":          "usage_usec lots\n",
		"nokey/cpu.stat":        "user_usec 1\n",
		"nokey/memory.events":   "oom 0\n",
		"badmem/cpu.stat":       "usage_usec 1\n",
		"badmem/memory.current": "max\n",
		"badmem/memory.stat":    "inactive_file 0\n",
		"badmem/pids.current":   "1\n",
		"badmem/memory.events":  "oom_kill x\n",
	})
	cg := OpenCgroups(root)
	for _, path := range []string{"/bad", "/nokey", "/badmem"} {
		if c, err := cg.Container(path); err == nil {
			t.Errorf("%s: read %+v, want an error", path, c)
		}
	}
	for _, path := range []string{"/nokey", "/badmem"} {
		if n, err := cg.OOMKills(path); err == nil {
			t.Errorf("%s: OOM kills %d, want an error", path, n)
		}
	}
}
