package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"skiff.dev/skiff/nodeagent/network"
)

// networkBench measures Instance networking with the CNI plugins, in a
// network namespace of its own acting as the node: CNI ADD over n
// Instances (median and p99, without and with a hostPort), and HTTP
// requests/s from one Instance to another on the node next to the same
// load over the node's loopback.
func networkBench(n int) ([]result, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("needs root")
	}
	if err := network.CheckPlugins(network.DefaultPluginDir); err != nil {
		return nil, err
	}
	host, cleanup, err := benchNetNS("skiff-bench-net")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	dir, err := os.MkdirTemp("", "skiff-bench-net-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	m, err := network.New(network.Config{
		PluginDir: network.DefaultPluginDir, DataDir: dir, HostNetNS: host,
		ClusterCIDR: netip.MustParsePrefix("10.254.0.0/16"),
	})
	if err != nil {
		return nil, err
	}
	if err := m.SetSubnet(netip.MustParsePrefix("10.254.1.0/24")); err != nil {
		return nil, err
	}
	ctx := context.Background()
	var ids []string
	defer func() {
		for _, id := range ids {
			_ = m.Teardown(ctx, id)
		}
	}()
	// One first, so that the bridge exists before timing.
	ids = append(ids, "warm")
	if _, err := m.Setup(ctx, "warm", nil); err != nil {
		return nil, err
	}
	add := func(prefix string, ports func(i int) []network.Port) ([]time.Duration, []network.Attachment, error) {
		var lat []time.Duration
		var atts []network.Attachment
		for i := range n {
			id := fmt.Sprintf("%s%d", prefix, i)
			start := time.Now()
			att, err := m.Setup(ctx, id, ports(i))
			if err != nil {
				return nil, nil, err
			}
			lat = append(lat, time.Since(start))
			ids, atts = append(ids, id), append(atts, att)
		}
		return lat, atts, nil
	}
	plain, atts, err := add("plain", func(int) []network.Port { return nil })
	if err != nil {
		return nil, err
	}
	published, _, err := add("port", func(i int) []network.Port {
		return []network.Port{{HostPort: int32(20000 + i), ContainerPort: 8080, Protocol: "TCP"}}
	})
	if err != nil {
		return nil, err
	}
	p50, p99, _ := percentiles(plain)
	pp50, pp99, _ := percentiles(published)

	between, err := httpRate(atts[0].NetNS, atts[1].NetNS, atts[0].IP.String()+":8080")
	if err != nil {
		return nil, fmt.Errorf("between instances: %w", err)
	}
	loopback, err := httpRate(host, host, "127.0.0.1:8080")
	if err != nil {
		return nil, fmt.Errorf("loopback: %w", err)
	}
	return []result{
		{fmt.Sprintf("CNI ADD p50 / p99, %d Instances", n), fmt.Sprintf("%s / %s", ms(p50), ms(p99)), "p50 <= 30 ms"},
		{fmt.Sprintf("CNI ADD with a hostPort p50 / p99, %d", n), fmt.Sprintf("%s / %s", ms(pp50), ms(pp99)), ""},
		{"HTTP req/s instance to instance (one node)", fmt.Sprintf("%.0f", between), ""},
		{"HTTP req/s over the node's loopback", fmt.Sprintf("%.0f", loopback), ""},
		{"instance to instance / loopback", fmt.Sprintf("%.0f %%", 100*between/loopback), ">= 70 %"},
	}, nil
}

// benchNetNS makes a named network namespace with loopback up.
func benchNetNS(name string) (string, func(), error) {
	name = fmt.Sprintf("%s-%d", name, os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return "", nil, fmt.Errorf("ip netns add: %v: %s", err, out)
	}
	path := filepath.Join("/run/netns", name)
	cleanup := func() { _ = exec.Command("ip", "netns", "delete", name).Run() }
	if out, err := exec.Command("nsenter", "--net="+path, "ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("loopback up: %v: %s", err, out)
	}
	return path, cleanup, nil
}

// httpRate serves a small response on addr inside the namespace server
// and measures requests/s over 8 keep-alive connections made inside the
// namespace client, for 5 seconds.
func httpRate(server, client, addr string) (float64, error) {
	ln, err := network.Listen(server, "tcp", addr)
	if err != nil {
		return 0, err
	}
	body := []byte("hello from skiff\n")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(body) })}
	go srv.Serve(ln)
	defer srv.Close()
	tr := &http.Transport{
		MaxIdleConnsPerHost: 8,
		DialContext:         network.DialContext(client, &net.Dialer{Timeout: 2 * time.Second}),
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	get := func() error {
		resp, err := c.Get("http://" + addr + "/")
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return err
	}
	if err := get(); err != nil {
		return 0, err
	}
	var count atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	const window = 5 * time.Second
	deadline := time.Now().Add(window)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if err := get(); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				count.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(count.Load()) / window.Seconds(), firstErr
}
