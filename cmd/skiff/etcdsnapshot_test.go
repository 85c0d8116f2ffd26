package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"skiff.dev/skiff/apiserver"
	"skiff.dev/skiff/apiserver/etcdsnapshot"
)

func TestSnapshotFlagsValidate(t *testing.T) {
	cfg := apiserver.DefaultConfig()
	external := cfg
	external.EtcdServers = []string{"https://etcd:2379"}
	ok := snapshotFlags{schedule: etcdsnapshot.DefaultSchedule, retention: 5}
	for _, c := range []struct {
		name string
		f    snapshotFlags
		cfg  apiserver.Config
		want string
	}{
		{"defaults", ok, cfg, ""},
		{"no schedule", snapshotFlags{retention: 5}, cfg, ""},
		{"restore", snapshotFlags{schedule: "@daily", retention: 5, clusterReset: true, restore: "f"}, cfg, ""},
		{"restore alone", snapshotFlags{schedule: "@daily", retention: 5, restore: "f"}, cfg, "--restore needs --cluster-reset"},
		{"reset alone", snapshotFlags{schedule: "@daily", retention: 5, clusterReset: true}, cfg, ""},
		{"external etcd", snapshotFlags{schedule: "@daily", retention: 5, clusterReset: true, restore: "f"}, external, "external etcd"},
		{"bad schedule", snapshotFlags{schedule: "0 25 * * *", retention: 5}, cfg, "--etcd-snapshot-schedule"},
		{"no retention", snapshotFlags{schedule: "@daily"}, cfg, "--etcd-snapshot-retention 0"},
	} {
		err := c.f.validate(c.cfg)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

func TestPrintSnapshots(t *testing.T) {
	created := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	var b bytes.Buffer
	printSnapshots(&b, []etcdsnapshot.Info{
		{Name: "before-n1-1740830400", Size: 3 << 20, Created: created},
		{Name: "junk", Size: 4, Created: created, Error: "not a tar"},
	}, false)
	got := b.String()
	for _, want := range []string{"NAME", "SIZE", "CREATED", "before-n1-1740830400", "3.0 MiB", "junk", "4 B", "not a snapshot: not a tar"} {
		if !strings.Contains(got, want) {
			t.Errorf("list output lacks %q:\n%s", want, got)
		}
	}
	if s := objectSummary(map[string]int{"secrets": 2, "namespaces": 3}); s != "5 (namespaces 3, secrets 2)" {
		t.Errorf("objectSummary = %q", s)
	}
	if s := humanSize(1536); s != "1.5 KiB" {
		t.Errorf("humanSize(1536) = %q", s)
	}
}
