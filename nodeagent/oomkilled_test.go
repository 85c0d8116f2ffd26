package nodeagent

import (
	"os"
	"path/filepath"
	"testing"

	"skiff.dev/skiff/nodeagent/usage"
)

func TestExitReason(t *testing.T) {
	for _, tc := range []struct {
		exitCode int
		oomKills uint64
		want     string
	}{
		{0, 0, "Completed"},
		{1, 0, "Error"},
		{137, 0, "Error"}, // killed, but not by the OOM killer
		{137, 1, "OOMKilled"},
		{1, 2, "OOMKilled"}, // a child was killed, and the shell gave up
		{0, 1, "OOMKilled"}, // as containerd reports it
	} {
		if got := exitReason(tc.exitCode, tc.oomKills); got != tc.want {
			t.Errorf("exit %d, %d OOM kills: %s, want %s", tc.exitCode, tc.oomKills, got, tc.want)
		}
	}
}

func TestOOMKillsOfContainer(t *testing.T) {
	root := t.TempDir()
	for name, content := range map[string]string{
		"cgroup.controllers":            "",
		"skiff/uid-main/memory.events":  "oom 1\noom_kill 1\n",
		"skiff/uid-other/memory.events": "oom 0\noom_kill 0\n",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cg := usage.OpenCgroups(root)
	for id, want := range map[string]uint64{"uid-main": 1, "uid-other": 0, "uid-gone": 0} {
		if got := oomKills(cg, id); got != want {
			t.Errorf("%s: %d OOM kills, want %d", id, got, want)
		}
	}
}
