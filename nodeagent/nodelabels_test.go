package nodeagent

import (
	"maps"
	goruntime "runtime"
	"strings"
	"testing"
)

func TestNodeLabels(t *testing.T) {
	host := func(extra map[string]string) map[string]string {
		m := map[string]string{"kubernetes.io/hostname": "n1", "kubernetes.io/os": goruntime.GOOS, "kubernetes.io/arch": goruntime.GOARCH}
		maps.Copy(m, extra)
		return m
	}
	for _, tc := range []struct {
		name         string
		labels       map[string]string
		zone, region string
		want         map[string]string
	}{
		{name: "machine facts only", want: host(nil)},
		{name: "zone and region", zone: "eu-1a", region: "eu-1",
			want: host(map[string]string{"topology.kubernetes.io/zone": "eu-1a", "topology.kubernetes.io/region": "eu-1"})},
		{name: "--labels beside them", labels: map[string]string{"disk": "ssd"}, zone: "eu-1a",
			want: host(map[string]string{"disk": "ssd", "topology.kubernetes.io/zone": "eu-1a"})},
		{name: "--labels win", labels: map[string]string{"kubernetes.io/hostname": "machine-7", "topology.kubernetes.io/zone": "eu-1b"},
			want: host(map[string]string{"kubernetes.io/hostname": "machine-7", "topology.kubernetes.io/zone": "eu-1b"})},
	} {
		cfg := Config{NodeName: "n1", Labels: tc.labels, Zone: tc.zone, Region: tc.region}
		if got := nodeLabels(cfg); !maps.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestValidateTopology(t *testing.T) {
	long := strings.Repeat("n", 64)
	for _, tc := range []struct {
		cfg     Config
		wantErr string // empty: valid
	}{
		{cfg: Config{NodeName: "n1", Zone: "eu-1a", Region: "eu-1"}},
		{cfg: Config{NodeName: "n1", Zone: "eu-1a", Labels: map[string]string{"topology.kubernetes.io/zone": "eu-1a"}}},
		{cfg: Config{NodeName: "n1", Zone: "eu-1a", Labels: map[string]string{"topology.kubernetes.io/zone": "eu-1b"}}, wantErr: "--zone"},
		{cfg: Config{NodeName: "n1", Region: "eu-1", Labels: map[string]string{"topology.kubernetes.io/region": "us-1"}}, wantErr: "--region"},
		{cfg: Config{NodeName: "n1", Zone: "not a zone"}, wantErr: "--zone"},
		{cfg: Config{NodeName: "n1", Region: "-eu"}, wantErr: "--region"},
		{cfg: Config{NodeName: long}, wantErr: "--node-name"},
		{cfg: Config{NodeName: long, Labels: map[string]string{"kubernetes.io/hostname": "short"}}},
	} {
		err := validateTopology(&tc.cfg)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%+v: %v", tc.cfg, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%+v: got %v, want an error naming %s", tc.cfg, err, tc.wantErr)
		}
	}
}
