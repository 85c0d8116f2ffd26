package nodeagent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"skiff.dev/skiff/nodeagent/runtime"
	"skiff.dev/skiff/nodeagent/usage"
)

// TestUsageCollector: running containers' cgroups and the node's /proc
// become the usage metrics, labelled with the container's Instance;
// stopped containers and those without a cgroup are left out.
func TestUsageCollector(t *testing.T) {
	ctx := context.Background()
	rt := runtime.NewSim(runtime.SimConfig{})
	for _, c := range []struct{ id, instance, container string }{
		{"uid1-web", "default/web-1", "web"}, {"uid1-log", "default/web-1", "log"},
		{"uid2-db", "prod/db-0", "db"}, {"uid3-gone", "prod/db-1", "db"},
	} {
		spec := runtime.Spec{Labels: map[string]string{labelInstance: c.instance, labelContainer: c.container}}
		if err := rt.Create(ctx, c.id, spec); err != nil {
			t.Fatal(err)
		}
		if err := rt.Start(ctx, c.id); err != nil {
			t.Fatal(err)
		}
	}
	if err := rt.Create(ctx, "uid4-created", runtime.Spec{Labels: map[string]string{labelInstance: "prod/db-2", labelContainer: "db"}}); err != nil {
		t.Fatal(err)
	}
	root, proc := t.TempDir(), t.TempDir()
	files := map[string]string{
		"cgroup.controllers": "",
		"proc/stat":          "cpu  200 0 100 5000 0 0 0 0 0 0\n",
		"proc/meminfo":       "MemTotal: 1000 kB\nMemFree: 400 kB\nInactive(file): 100 kB\n",
	}
	for id, cpu := range map[string]string{"uid1-web": "1500000", "uid1-log": "250000", "uid2-db": "4000000", "uid4-created": "1"} {
		files["skiff/"+id+"/cpu.stat"] = "usage_usec " + cpu + "\n"
		files["skiff/"+id+"/memory.current"] = "2000000\n"
		files["skiff/"+id+"/memory.stat"] = "inactive_file 500000\n"
		files["skiff/"+id+"/pids.current"] = "2\n"
	}
	for name, content := range files {
		dir := root
		if after, ok := strings.CutPrefix(name, "proc/"); ok {
			dir, name = proc, after
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(newUsageCollector(rt, usage.OpenCgroups(root), proc))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += " " + l.GetName() + "=" + l.GetValue() // sorted by name
			}
			got[key] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	want := map[string]float64{
		"skiff_container_cpu_usage_seconds_total container=web instance=web-1 namespace=default":  1.5,
		"skiff_container_cpu_usage_seconds_total container=log instance=web-1 namespace=default":  0.25,
		"skiff_container_cpu_usage_seconds_total container=db instance=db-0 namespace=prod":       4,
		"skiff_container_memory_working_set_bytes container=web instance=web-1 namespace=default": 1500000,
		"skiff_container_memory_working_set_bytes container=log instance=web-1 namespace=default": 1500000,
		"skiff_container_memory_working_set_bytes container=db instance=db-0 namespace=prod":      1500000,
		"skiff_container_pids container=web instance=web-1 namespace=default":                     2,
		"skiff_container_pids container=log instance=web-1 namespace=default":                     2,
		"skiff_container_pids container=db instance=db-0 namespace=prod":                          2,
		"skiff_node_cpu_usage_seconds_total":                                                      3,
		"skiff_node_memory_working_set_bytes":                                                     500 * 1024,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected %s = %v", k, got[k])
		}
	}
}
