package network_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"skiff.dev/skiff/nodeagent/network"
	"skiff.dev/skiff/nodeagent/network/nettest"
)

func BenchmarkSetupTeardown(b *testing.B) {
	nettest.Skip(b)
	for _, ports := range []int{0, 1} {
		b.Run(fmt.Sprintf("ports=%d", ports), func(b *testing.B) {
			host := nettest.Host(b, "bench")
			m, err := network.New(network.Config{PluginDir: network.DefaultPluginDir, DataDir: b.TempDir(), ClusterCIDR: cluster, HostNetNS: host})
			if err != nil {
				b.Fatal(err)
			}
			if err := m.SetSubnet(netip.MustParsePrefix("10.244.9.0/24")); err != nil {
				b.Fatal(err)
			}
			var add, del time.Duration
			for i := 0; b.Loop(); i++ {
				id := fmt.Sprintf("b%d", i)
				var p []network.Port
				if ports > 0 {
					p = []network.Port{{HostPort: 9000, ContainerPort: 80, Protocol: "TCP"}}
				}
				t0 := time.Now()
				if _, err := m.Setup(context.Background(), id, p); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if err := m.Teardown(context.Background(), id); err != nil {
					b.Fatal(err)
				}
				add, del = add+t1.Sub(t0), del+time.Since(t1)
			}
			b.ReportMetric(float64(add.Milliseconds())/float64(b.N), "add-ms/op")
			b.ReportMetric(float64(del.Milliseconds())/float64(b.N), "del-ms/op")
		})
	}
}
