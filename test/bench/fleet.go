package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// fleetBench runs `skiff agent --simulate-nodes n` against a server and
// reports the time to join them all, the fleet process's RSS, and how late
// Lease renewals are: the largest age of any of the fleet's Leases over a
// sampling window, beyond the renewal interval.
func fleetBench(bin string, n int, interval, window time.Duration) ([]result, error) {
	dir, srv, api, err := tempServer(bin, "skiff-bench-fleet-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	defer srv.stop()
	t0 := time.Now()
	fleet, err := startFleet(bin, dir, srv, api, n, interval)
	if err != nil {
		return nil, err
	}
	defer fleet.stop()
	joined := time.Since(t0)
	// Leases renewed while the others joined are as old as the join took:
	// let every node renew once before sampling.
	time.Sleep(2 * interval)
	var worst time.Duration
	start := time.Now()
	deadline := start.Add(window)
	samples, renewals := 0, 0
	var prev map[string]time.Time
	for time.Now().Before(deadline) {
		now := time.Now()
		leases, err := api.leases()
		if err != nil {
			return nil, err
		}
		if len(leases) < n {
			return nil, fmt.Errorf("%d of %d leases listed", len(leases), n)
		}
		samples++
		for name, renewed := range leases {
			worst = max(worst, now.Sub(renewed))
			if p, ok := prev[name]; ok && !p.Equal(renewed) {
				renewals++ // sampled every second: at most one renewal between two lists
			}
		}
		prev = leases
		time.Sleep(time.Second)
	}
	writes := float64(renewals) / time.Since(start).Seconds()
	// Lease times are stored to the microsecond, sampling adds up to the
	// time of one list: a lease is late when older than its interval.
	late := max(worst-interval, 0)
	rss := rssOf(fleet.Process.Pid)
	return []result{
		{fmt.Sprintf("fleet %d nodes: time to join all", n), fmt.Sprintf("%.1f s", joined.Seconds()), ""},
		{fmt.Sprintf("fleet %d nodes: RSS", n), mb(rss), "<= 1 GB at 5000"},
		{fmt.Sprintf("fleet %d nodes: oldest of %d lease lists (interval %s)", n, samples, interval), fmt.Sprintf("%s (late by %s)", ms(worst), ms(late)), "late by 0"},
		{fmt.Sprintf("fleet %d nodes: Lease writes (interval %s)", n, interval), fmt.Sprintf("%.0f /s", writes), fmt.Sprintf("%d nodes / interval = %.0f /s", n, float64(n)/interval.Seconds())},
	}, nil
}

// fleetProcess is a `skiff agent --simulate-nodes` run by a benchmark.
type fleetProcess struct{ *exec.Cmd }

// startFleet runs n simulated nodes against srv, with the agent flags
// extra, and waits until each has a Lease.
func startFleet(bin, dir string, srv *server, api *client, n int, interval time.Duration, extra ...string) (*fleetProcess, error) {
	args := append([]string{"agent", "--simulate-nodes", fmt.Sprint(n), "--runtime", "sim", "--node-name", "fleet",
		"--server", srv.url, "--join-token", filepath.Join(dir, "server", "join-token"), "--kubeconfig", srv.kubeconfig,
		"--data-dir", filepath.Join(dir, "fleet"), "--lease-interval", interval.String(), "--status-interval", "1h", "--listen", "127.0.0.1:0"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	f := &fleetProcess{cmd}
	if err := api.waitLeases(n, 10*time.Minute); err != nil {
		f.stop()
		return nil, err
	}
	return f, nil
}

func (f *fleetProcess) stop() {
	_ = f.Process.Signal(syscall.SIGTERM)
	_ = f.Wait()
}

func (c *client) leases() (map[string]time.Time, error) {
	resp, err := c.hc.Get(c.host + "/apis/coordination.k8s.io/v1/namespaces/skiff-node-lease/leases")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("list leases: %s", resp.Status)
	}
	var list struct {
		Items []struct {
			Metadata struct{ Name string } `json:"metadata"`
			Spec     struct {
				RenewTime time.Time `json:"renewTime"`
			} `json:"spec"`
		} `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, err
	}
	out := map[string]time.Time{}
	for _, l := range list.Items {
		if strings.HasPrefix(l.Metadata.Name, "fleet-") {
			out[l.Metadata.Name] = l.Spec.RenewTime
		}
	}
	return out, nil
}

func (c *client) waitLeases(n int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if l, err := c.leases(); err == nil && len(l) >= n {
			return nil
		}
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Errorf("%d leases not there within %s", n, limit)
}

// waitNodesReady waits for n fleet Nodes in phase Ready with an
// instanceCIDR.
func (c *client) waitNodesReady(n int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	ready := 0
	for time.Now().Before(deadline) {
		if ready = c.readyNodes(); ready >= n {
			return nil
		}
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Errorf("%d of %d nodes Ready with a subnet within %s", ready, n, limit)
}

func (c *client) readyNodes() int {
	resp, err := c.hc.Get(c.host + "/apis/skiff.dev/v1alpha1/nodes")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var list struct {
		Items []struct {
			Metadata struct{ Name string }         `json:"metadata"`
			Spec     struct{ InstanceCIDR string } `json:"spec"`
			Status   struct{ Phase string }        `json:"status"`
		} `json:"items"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&list) != nil {
		return 0
	}
	ready := 0
	for _, n := range list.Items {
		if strings.HasPrefix(n.Metadata.Name, "fleet-") && n.Status.Phase == "Ready" && n.Spec.InstanceCIDR != "" {
			ready++
		}
	}
	return ready
}

// tempServer starts a server (without its local agent) in a new temporary
// directory, whose server/ subdirectory is its data dir.
func tempServer(bin, prefix string, extra ...string) (string, *server, *client, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, nil, err
	}
	srv, err := start(bin, filepath.Join(dir, "server"), extra...)
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, nil, err
	}
	api, err := newClient(srv.kubeconfig)
	if err != nil {
		srv.stop()
		os.RemoveAll(dir)
		return "", nil, nil, err
	}
	return dir, srv, api, nil
}
