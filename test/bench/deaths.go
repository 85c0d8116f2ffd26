package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// nodeDeathBench runs agents (simulated containers, real gossip on
// loopback) against a server with its controllers and measures, over
// deaths kills -9 of the node an Instance runs on, the time until its
// replacement is Running on the surviving node; then restarts one agent
// restarts times (kill -9, started again at once, as systemd's
// Restart=always does) and counts the restarts that cost a replacement or
// a dead taint (false positives).
func nodeDeathBench(bin string, deaths, restarts int) ([]result, error) {
	dir, srv, api, err := tempServer(bin, "skiff-bench-deaths-", "--node-grace-period", "15s")
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	survivor, err := startSimAgent(bin, dir, srv, "survivor", "")
	if err != nil {
		return nil, err
	}
	defer survivor.stop()
	var took []time.Duration
	for i := range deaths {
		name := fmt.Sprintf("victim-%d", i)
		victim, err := startSimAgent(bin, dir, srv, name, "bench-victim=yes")
		if err != nil {
			return nil, err
		}
		app := fmt.Sprintf("death-%d", i)
		uid, err := api.placeOn(app, name)
		if err != nil {
			victim.stop()
			return nil, err
		}
		died := time.Now()
		victim.kill()
		if err := api.waitReplacement(app, uid, "survivor", time.Minute); err != nil {
			return nil, fmt.Errorf("death %d: %w", i, err)
		}
		took = append(took, time.Since(died))
	}
	// Restarts: nothing may be replaced.
	name := "restarted"
	agent, err := startSimAgent(bin, dir, srv, name, "bench-victim=yes")
	if err != nil {
		return nil, err
	}
	uid, err := api.placeOn("restart", name)
	if err != nil {
		agent.stop()
		return nil, err
	}
	falsePositives := 0
	for range restarts {
		agent.kill()
		if agent, err = startSimAgent(bin, dir, srv, name, "bench-victim=yes"); err != nil {
			return nil, err
		}
		time.Sleep(6 * time.Second) // past a suspicion timeout
		rows, _ := api.appInstances("restart")
		if len(rows) != 1 || rows[0].uid != uid || api.tainted(name, "node.skiff.dev/dead") {
			falsePositives++
			if uid, err = api.placeOn("restart-again", name); err != nil {
				break
			}
		}
	}
	agent.stop()
	slices.Sort(took)
	return []result{
		{fmt.Sprintf("node death to replacement Running, p50 / p99 of %d", len(took)), fmt.Sprintf("%s / %s", ms(took[len(took)/2]), ms(took[len(took)*99/100])), "<= 5 s (Kubernetes ~350 s, Nomad ~25 s)"},
		{fmt.Sprintf("agent kill -9 and restart: replacements in %d", restarts), fmt.Sprint(falsePositives), "0"},
	}, nil
}

// simAgent is a `skiff agent --runtime sim` run by a benchmark.
type simAgent struct{ cmd *exec.Cmd }

func startSimAgent(bin, dir string, srv *server, name, labels string) (*simAgent, error) {
	args := []string{"agent", "--server", srv.url, "--join-token", filepath.Join(dir, "server", "join-token"),
		"--data-dir", filepath.Join(dir, name), "--node-name", name, "--runtime", "sim", "--listen", "127.0.0.1:0", "--gossip-bind", "127.0.0.1:0"}
	if labels != "" {
		args = append(args, "--labels", labels)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &simAgent{cmd}, nil
}

func (a *simAgent) kill() { _ = a.cmd.Process.Kill(); _ = a.cmd.Wait() }
func (a *simAgent) stop() { _ = a.cmd.Process.Signal(syscall.SIGTERM); _ = a.cmd.Wait() }

type appInstance struct{ uid, node, phase string }

// placeOn creates a one-replica Workload app that prefers the victims and
// waits until it runs on node, whose gossip is healthy by then (its Lease
// renewed slowly). It returns the Instance's UID.
func (c *client) placeOn(app, node string) (string, error) {
	deadline := time.Now().Add(time.Minute)
	for c.leaseSeconds(node) != 120 {
		if time.Now().After(deadline) {
			return "", fmt.Errorf("node %s: gossip not healthy within a minute", node)
		}
		time.Sleep(200 * time.Millisecond)
	}
	body := fmt.Sprintf(`{"apiVersion":"skiff.dev/v1alpha1","kind":"Workload","metadata":{"name":%q},"spec":{"replicas":1,"template":{"metadata":{"labels":{"app":%q}},"spec":{`+
		`"affinity":{"nodeAffinity":{"preferredDuringSchedulingIgnoredDuringExecution":[{"weight":100,"preference":{"matchExpressions":[{"key":"bench-victim","operator":"In","values":["yes"]}]}}]}},`+
		`"containers":[{"name":"main","image":"registry.local/load:1"}]}}}}`, app, app)
	if err := c.post(c.base, app, []byte(body)); err != nil {
		return "", err
	}
	for time.Now().Before(deadline) {
		rows, _ := c.appInstances(app)
		if len(rows) == 1 && rows[0].phase == "Running" {
			if rows[0].node != node {
				return "", fmt.Errorf("%s placed on %s, not %s", app, rows[0].node, node)
			}
			return rows[0].uid, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "", fmt.Errorf("%s not Running on %s within a minute", app, node)
}

// waitReplacement waits for an Instance of app other than uid Running on node.
func (c *client) waitReplacement(app, uid, node string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		rows, _ := c.appInstances(app)
		for _, r := range rows {
			if r.uid != uid && r.phase == "Running" && r.node == node {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("no replacement of %s Running on %s within %s", app, node, limit)
}

func (c *client) appInstances(app string) ([]appInstance, error) {
	var list struct {
		Items []struct {
			Metadata struct {
				UID               string  `json:"uid"`
				DeletionTimestamp *string `json:"deletionTimestamp"`
			} `json:"metadata"`
			Spec   struct{ NodeName string } `json:"spec"`
			Status struct{ Phase string }    `json:"status"`
		} `json:"items"`
	}
	if err := c.getJSON(c.instancesURL()+"?labelSelector=app%3D"+app, &list); err != nil {
		return nil, err
	}
	var out []appInstance
	for _, it := range list.Items {
		if it.Metadata.DeletionTimestamp == nil {
			out = append(out, appInstance{it.Metadata.UID, it.Spec.NodeName, it.Status.Phase})
		}
	}
	return out, nil
}

func (c *client) leaseSeconds(node string) int {
	var lease struct {
		Spec struct{ LeaseDurationSeconds int } `json:"spec"`
	}
	if c.getJSON(c.host+"/apis/coordination.k8s.io/v1/namespaces/skiff-node-lease/leases/"+node, &lease) != nil {
		return 0
	}
	return lease.Spec.LeaseDurationSeconds
}

func (c *client) tainted(node, key string) bool {
	var n struct {
		Spec struct{ Taints []struct{ Key string } } `json:"spec"`
	}
	if c.getJSON(c.host+"/apis/skiff.dev/v1alpha1/nodes/"+node, &n) != nil {
		return false
	}
	return slices.ContainsFunc(n.Spec.Taints, func(t struct{ Key string }) bool { return strings.EqualFold(t.Key, key) })
}

func (c *client) getJSON(url string, into any) error {
	resp, err := c.hc.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(into)
}
