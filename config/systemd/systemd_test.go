// Package systemd_test checks the systemd units that run skiff: that
// systemd-analyze accepts them, and that they keep the settings skiff
// relies on.
package systemd_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// installedBinary is where the units expect skiff.
const installedBinary = "/usr/local/bin/skiff"

var units = []string{"skiff-agent.service", "skiff-server.service"}

// TestUnitsVerify runs `systemd-analyze verify` on copies of the units whose
// ExecStart names a binary that exists (verify checks it): $SKIFF_BIN if
// set, else this test binary. Any message about the units, warnings
// included, fails the test.
func TestUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (Debian package systemd): the units are not verified")
	}
	bin := os.Getenv("SKIFF_BIN")
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
			t.Fatal(err)
		}
	}
	if bin, err = filepath.Abs(bin); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var paths []string
	for _, name := range units {
		text := strings.ReplaceAll(readUnit(t, name), installedBinary, bin)
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, path)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, analyze, append([]string{"verify", "--man=no"}, paths...)...)
	cmd.Dir = dir
	// A debug level inherited from the environment would print every unit
	// loaded; info prints only what is wrong.
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_LEVEL=info", "SYSTEMD_LOG_COLOR=0")
	out, err := cmd.CombinedOutput()
	if len(out) > 0 {
		t.Logf("systemd-analyze verify:\n%s", out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		for _, name := range units {
			if strings.Contains(line, name) {
				t.Errorf("%s: %s", name, line)
			}
		}
	}
	if err != nil {
		t.Errorf("systemd-analyze verify: %v", err)
	}
}

// TestUnitsSettings checks the settings skiff depends on, so that an edit
// that drops one fails even where systemd-analyze is missing.
func TestUnitsSettings(t *testing.T) {
	common := map[string]string{
		"Type":                  "notify", // READY=1 once serving
		"Restart":               "always",
		"LimitNOFILE":           "1048576",
		"TasksMax":              "infinity",
		"After":                 "network-online.target",
		"Wants":                 "network-online.target",
		"WantedBy":              "multi-user.target",
		"StartLimitIntervalSec": "0",
	}
	cases := []struct {
		unit string
		want map[string]string
		// exec is how ExecStart must begin; args must be on it.
		exec, args string
	}{
		{"skiff-agent.service", map[string]string{
			"Delegate": "yes",
			// Containers outlive an agent restart.
			"KillMode":        "process",
			"EnvironmentFile": "-/etc/default/skiff-agent",
			// Back before gossip's 3 s suspicion runs out: a restart is not a death.
			"RestartSec": "500ms",
		}, installedBinary + " agent ", "$SKIFF_AGENT_ARGS"},
		{"skiff-server.service", map[string]string{
			// The local agent's containers outlive a server restart.
			"Delegate":        "yes",
			"KillMode":        "process",
			"EnvironmentFile": "-/etc/default/skiff-server",
			"RestartSec":      "2",
		}, installedBinary + " server ", "$SKIFF_SERVER_ARGS"},
	}
	for _, tc := range cases {
		t.Run(tc.unit, func(t *testing.T) {
			got := settings(t, tc.unit)
			for _, want := range []map[string]string{common, tc.want} {
				for key, value := range want {
					if got[key] != value {
						t.Errorf("%s=%q, want %q", key, got[key], value)
					}
				}
			}
			if exec := got["ExecStart"]; !strings.HasPrefix(exec, tc.exec) || !strings.Contains(exec, tc.args) {
				t.Errorf("ExecStart=%q, want %q... with %s", exec, tc.exec, tc.args)
			}
		})
	}
}

// settings returns the unit's Key=value lines as a map; as in systemd, the
// last of a key's lines counts (for these keys).
func settings(t *testing.T, name string) map[string]string {
	t.Helper()
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(readUnit(t, name)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";") || strings.HasPrefix(line, "[") {
			continue
		}
		if key, value, ok := strings.Cut(line, "="); ok {
			m[strings.TrimSpace(key)] = strings.TrimSpace(value)
		}
	}
	return m
}

func readUnit(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
