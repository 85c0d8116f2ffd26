package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"skiff.dev/skiff/nodeagent/bundle"
)

const benchImage = "bench.local/busybox:1"

// agentBench measures the node agent on runc: its overhead over bare
// `runc create` + `runc start` of the same bundles (bind to Running,
// median and p99 over n containers, warm image) and its RSS idle and with n
// running containers.
func agentBench(bin string, n int) ([]result, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("needs root")
	}
	runc, err := exec.LookPath("runc")
	if err != nil {
		return nil, errors.New("needs runc")
	}
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		return nil, errors.New("needs busybox-static")
	}
	dir, srv, api, err := tempServer(bin, "skiff-bench-agent-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	defer srv.stop()
	agentDir := filepath.Join(dir, "agent")
	// A warm image: imported at start from the air-gap directory.
	if err := writeImageArchive(busybox, filepath.Join(agentDir, "images", "busybox.tar")); err != nil {
		return nil, err
	}
	// The node's networking (bridge, rules) in a namespace of its own,
	// not on the machine.
	host, cleanup, err := benchNetNS("skiff-bench-agent")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	agent := exec.Command(bin, "agent", "--server", srv.url, "--join-token", filepath.Join(dir, "server", "join-token"),
		"--data-dir", agentDir, "--node-name", "bench", "--runtime", "runc", "--listen", "127.0.0.1:0", "--netns", host, "--gossip-bind", "127.0.0.1:0")
	// The agent's log is not part of the figures.
	agent.Stdout, agent.Stderr = io.Discard, io.Discard
	if err := agent.Start(); err != nil {
		return nil, err
	}
	defer func() {
		_ = agent.Process.Signal(syscall.SIGTERM)
		_ = agent.Wait()
	}()
	if err := api.waitNodeReady("bench", 60*time.Second); err != nil {
		return nil, err
	}
	// The server runs no controllers: give the node its subnet as the
	// node IPAM controller would.
	if err := api.setInstanceCIDR("bench", "10.88.0.0/24"); err != nil {
		return nil, err
	}
	time.Sleep(2 * time.Second) // settle before reading RSS
	idle, idleAnon := rssOf(agent.Process.Pid), anonOf(agent.Process.Pid)

	lat, err := api.bindToRunning("bench", n)
	if err != nil {
		return nil, err
	}
	loaded, loadedAnon := rssOf(agent.Process.Pid), anonOf(agent.Process.Pid)
	shims := shimRSS()
	// The baseline: bare runc create + start of the agent's own bundles
	// (same config.json, same overlay rootfs), in a cgroup of their own.
	bare, err := bareRunc(runc, filepath.Join(agentDir, "runtime", "bundles"), filepath.Join(dir, "bare"))
	if err != nil {
		return nil, fmt.Errorf("bare runc: %w", err)
	}
	if err := api.deleteInstances(n, 2*time.Minute); err != nil {
		return nil, err
	}

	bareP50, bareP99, _ := percentiles(bare)
	p50, p99, _ := percentiles(lat)
	return []result{
		{"bare runc create+start p50 / p99", fmt.Sprintf("%s / %s", ms(bareP50), ms(bareP99)), ""},
		{"agent bind to Running p50 / p99", fmt.Sprintf("%s / %s", ms(p50), ms(p99)), ""},
		{"agent overhead p50 / p99 (with CNI ADD)", fmt.Sprintf("%s / %s", ms(p50-bareP50), ms(p99-bareP99)), "p50 <= 20 ms"},
		{"agent RSS idle (private)", fmt.Sprintf("%s (%s)", mb(idle), mb(idleAnon)), "<= 40 MB"},
		{fmt.Sprintf("agent RSS, %d containers (private)", n), fmt.Sprintf("%s (%s)", mb(loaded), mb(loadedAnon)), "<= 60 MB"},
		{"shim RSS per container", mb(shims), ""},
	}, nil
}

// bareRunc times runc create + start of a copy of each bundle in bundles
// (the agent's), with another id and cgroup, then deletes it.
func bareRunc(runc, bundles, dir string) ([]time.Duration, error) {
	entries, err := os.ReadDir(bundles)
	if err != nil {
		return nil, err
	}
	state := filepath.Join(dir, "state")
	var samples []time.Duration
	for i, e := range entries {
		data, err := os.ReadFile(filepath.Join(bundles, e.Name(), "config.json"))
		if err != nil {
			return nil, err
		}
		var spec specs.Spec
		if err := json.Unmarshal(data, &spec); err != nil {
			return nil, err
		}
		id := fmt.Sprintf("bare-%d", i)
		spec.Linux.CgroupsPath = "/skiff-bench/" + id
		b := filepath.Join(dir, "bundles", id)
		if err := bundle.Write(b, &spec); err != nil {
			return nil, err
		}
		null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
		if err != nil {
			return nil, err
		}
		t0 := time.Now()
		create := exec.Command(runc, "--root", state, "create", "--bundle", b, id)
		create.Stdout, create.Stderr = null, null
		err = create.Run()
		null.Close()
		if err != nil {
			return nil, fmt.Errorf("create: %w", err)
		}
		if out, err := exec.Command(runc, "--root", state, "start", id).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("start: %w: %s", err, out)
		}
		samples = append(samples, time.Since(t0))
		_ = exec.Command(runc, "--root", state, "delete", "--force", id).Run()
	}
	return samples, nil
}

// writeImageArchive writes a busybox image (one layer: /bin/busybox and
// its applets) as an image tarball tagged benchImage.
func writeImageArchive(busybox, path string) error {
	data, err := os.ReadFile(busybox)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	_ = tw.WriteHeader(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755})
	_ = tw.WriteHeader(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(data))})
	_, _ = tw.Write(data)
	for _, applet := range []string{"sh", "sleep", "echo"} {
		_ = tw.WriteHeader(&tar.Header{Name: "bin/" + applet, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777})
	}
	if err := tw.Close(); err != nil {
		return err
	}
	layerData := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerData)), nil })
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	img, err = mutate.Config(img, v1.Config{Env: []string{"PATH=/bin"}, Entrypoint: []string{"sh", "-c"}})
	if err != nil {
		return err
	}
	ref, err := name.ParseReference(benchImage)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return tarball.WriteToFile(path, ref, img)
}

func (c *client) instances() string {
	return c.host + "/apis/skiff.dev/v1alpha1/namespaces/default/instances"
}

func (c *client) setInstanceCIDR(node, cidr string) error {
	body := strings.NewReader(`{"spec":{"instanceCIDR":"` + cidr + `"}}`)
	req, err := http.NewRequest(http.MethodPatch, c.host+"/apis/skiff.dev/v1alpha1/nodes/"+node, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/merge-patch+json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("node %s instanceCIDR: %s: %s", node, resp.Status, msg)
	}
	return nil
}

func (c *client) waitNodeReady(node string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		resp, err := c.hc.Get(c.host + "/apis/skiff.dev/v1alpha1/nodes/" + node)
		if err == nil {
			var n struct {
				Status struct{ Phase, AgentEndpoint string } `json:"status"`
			}
			err = json.NewDecoder(resp.Body).Decode(&n)
			resp.Body.Close()
			if err == nil && n.Status.Phase == "Ready" {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("node %s not ready within %s", node, limit)
}

// bindToRunning creates n Instances bound to node, one at a time, and times
// each from the create until a watch shows it Running.
func (c *client) bindToRunning(node string, n int) ([]time.Duration, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.instances()+"?watch=true", nil)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	running := make(chan string, 64)
	go func() {
		defer close(running)
		dec := json.NewDecoder(bufio.NewReader(resp.Body))
		for {
			var ev struct {
				Object struct {
					Metadata struct{ Name string }  `json:"metadata"`
					Status   struct{ Phase string } `json:"status"`
				} `json:"object"`
			}
			if dec.Decode(&ev) != nil {
				return
			}
			if ev.Object.Status.Phase == "Running" {
				running <- ev.Object.Metadata.Name
			}
		}
	}()
	var samples []time.Duration
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("bench-%d", i)
		body := fmt.Sprintf(`{"apiVersion":"skiff.dev/v1alpha1","kind":"Instance","metadata":{"name":%q},"spec":{"nodeName":%q,"terminationGracePeriodSeconds":1,"containers":[{"name":"main","image":%q,"args":["exec sleep 1000"]}]}}`, name, node, benchImage)
		t0 := time.Now()
		r, err := c.hc.Post(c.instances(), "application/json", strings.NewReader(body))
		if err != nil {
			return nil, err
		}
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
		if r.StatusCode != http.StatusCreated {
			return nil, fmt.Errorf("create %s: %s", name, r.Status)
		}
		timeout := time.After(60 * time.Second)
	wait:
		for {
			select {
			case got, ok := <-running:
				if !ok {
					return nil, errors.New("instance watch ended")
				}
				if got == name {
					break wait
				}
			case <-timeout:
				return nil, fmt.Errorf("instance %s not Running within 60s", name)
			}
		}
		samples = append(samples, time.Since(t0))
	}
	return samples, nil
}

// deleteInstances deletes the benchmark's Instances and waits until the
// agent has stopped them all.
func (c *client) deleteInstances(n int, limit time.Duration) error {
	for i := 0; i < n; i++ {
		req, _ := http.NewRequest(http.MethodDelete, fmt.Sprintf("%s/bench-%d", c.instances(), i), nil)
		if resp, err := c.hc.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		resp, err := c.hc.Get(c.instances())
		if err == nil {
			var list struct{ Items []json.RawMessage }
			err = json.NewDecoder(resp.Body).Decode(&list)
			resp.Body.Close()
			if err == nil && len(list.Items) == 0 {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("instances not deleted within %s", limit)
}

// rssOf reads a process's resident set size.
func rssOf(pid int) int64 { return statusKB(pid, "VmRSS:") }

// anonOf reads a process's private (anonymous) resident memory: its RSS
// without the pages of its executable, which processes of one binary share.
func anonOf(pid int) int64 { return statusKB(pid, "RssAnon:") }

func statusKB(pid int, field string) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field {
			var kb int64
			fmt.Sscan(f[1], &kb)
			return kb << 10
		}
	}
	return -1
}

// shimRSS is the mean RSS of the running skiff-shim processes.
func shimRSS() int64 {
	matches, _ := filepath.Glob("/proc/[0-9]*/comm")
	var total, count int64
	for _, m := range matches {
		comm, err := os.ReadFile(m)
		if err != nil || !strings.HasPrefix(string(comm), "skiff-shim") {
			continue
		}
		var pid int
		fmt.Sscanf(filepath.Base(filepath.Dir(m)), "%d", &pid)
		if r := rssOf(pid); r > 0 {
			total += r
			count++
		}
	}
	if count == 0 {
		return 0
	}
	return total / count
}
