// Command bench measures the apiserver on this machine and prints a table:
// creates/s with 8 concurrent clients (1 KB Workloads), list latency of
// 10,000 objects, watch delivery latency, RSS idle and with 10,000
// objects, and time to /readyz on an existing data directory. It runs the
// real binary ($SKIFF_BIN, default bin/skiff) with an embedded etcd.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"skiff.dev/skiff/internal/loadgen"
)

func main() {
	objects := flag.Int("objects", 10000, "objects to create")
	clients := flag.Int("clients", 8, "concurrent create clients")
	profile := flag.String("cpuprofile", "", "write the server's CPU profile of the create phase to this file (and of the lists to FILE.list); with -only controllers, of the first fleet's burst; with -only binds, of its burst")
	containers := flag.Int("containers", 50, "containers the agent benchmark runs")
	only := flag.String("only", "", "run one part: apiserver, ha, agent, probes, network, fleet, controllers, binds, placement, mcp or gossip")
	haKills := flag.Int("ha-kills", 10, "etcd leader kills the ha benchmark times failover over")
	probeInstances := flag.Int("probe-instances", 100, "Instances serving HTTP the probes benchmark runs")
	probeWindow := flag.Duration("probe-window", 30*time.Second, "how long the probes benchmark samples the agent's CPU, without and with probes")
	execs := flag.Int("execs", 50, "execs of each kind the probes benchmark times")
	deaths := flag.Int("deaths", 10, "node deaths the gossip benchmark times")
	restarts := flag.Int("restarts", 20, "agent restarts the gossip benchmark counts false positives over")
	mcpNodes := flag.Int("mcp-nodes", 1000, "simulated nodes of the MCP benchmark")
	mcpInstances := flag.Int("mcp-instances", 10000, "Instances of the MCP benchmark")
	mcpCalls := flag.Int("mcp-calls", 50, "calls of each tool the MCP benchmark times")
	netInstances := flag.Int("network-instances", 50, "Instances the network benchmark sets up")
	ctrlNodes := flag.String("controller-fleets", "1000,5000", "fleet sizes of the controllers benchmark, comma-separated")
	bindsNodes := flag.Int("binds-fleet", 5000, "simulated nodes of the binds benchmark (scheduler_perf's shape: nothing is started); it applies half -workloads")
	workloads := flag.Int("workloads", 100, "Workloads of the controllers benchmark")
	replicas := flag.Int("replicas", 100, "replicas of each Workload of the controllers benchmark")
	fleets := flag.String("fleets", "1000,5000", "simulated fleet sizes, comma-separated")
	leaseInterval := flag.Duration("lease-interval", 5*time.Second, "the simulated nodes' lease interval")
	window := flag.Duration("window", 30*time.Second, "how long lease renewals are sampled")
	flag.Parse()
	bin := os.Getenv("SKIFF_BIN")
	if bin == "" {
		bin = "bin/skiff"
	}
	var all []result
	if *only == "" || *only == "apiserver" {
		res, err := run(bin, *objects, *clients, *profile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		all = append(all, res...)
	}
	if *only == "" || *only == "ha" {
		res, err := haBench(bin, *objects, *clients, *haKills)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: ha:", err)
			os.Exit(1)
		}
		all = append(all, res...)
	}
	if *only == "" || *only == "agent" {
		res, err := agentBench(bin, *containers)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: agent:", err)
			if *only == "agent" {
				os.Exit(1)
			}
		}
		all = append(all, res...)
	}
	if *only == "" || *only == "probes" {
		res, err := probesBench(bin, *probeInstances, *probeWindow, *execs)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: probes:", err)
			if *only == "probes" {
				os.Exit(1)
			}
		}
		all = append(all, res...)
	}
	if *only == "" || *only == "network" {
		res, err := networkBench(*netInstances)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: network:", err)
			if *only == "network" {
				os.Exit(1)
			}
		}
		all = append(all, res...)
	}
	if *only == "" || *only == "fleet" {
		for _, size := range strings.Split(*fleets, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(size))
			if err != nil {
				fmt.Fprintln(os.Stderr, "bench: -fleets:", err)
				os.Exit(2)
			}
			res, err := fleetBench(bin, n, *leaseInterval, *window)
			if err != nil {
				fmt.Fprintf(os.Stderr, "bench: fleet %d: %v\n", n, err)
				if *only == "fleet" {
					os.Exit(1)
				}
			}
			all = append(all, res...)
		}
	}
	if *only == "" || *only == "controllers" {
		for i, size := range strings.Split(*ctrlNodes, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(size))
			if err != nil {
				fmt.Fprintln(os.Stderr, "bench: -controller-fleets:", err)
				os.Exit(2)
			}
			w := *workloads
			if i > 0 {
				// Beyond the first fleet only binds/s is asked: half the load.
				w = max(w/2, 1)
			}
			prof := ""
			if i == 0 && *only == "controllers" {
				prof = *profile
			}
			res, err := controllersBench(bin, n, w, *replicas, prof)
			if err != nil {
				fmt.Fprintf(os.Stderr, "bench: controllers at %d nodes: %v\n", n, err)
				if *only == "controllers" {
					os.Exit(1)
				}
			}
			all = append(all, res...)
		}
	}
	if *only == "" || *only == "binds" {
		prof := ""
		if *only == "binds" {
			prof = *profile
		}
		res, err := bindsBench(bin, *bindsNodes, max(*workloads/2, 1), *replicas, prof)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: binds:", err)
			if *only == "binds" {
				os.Exit(1)
			}
		}
		all = append(all, res...)
	}
	if *only == "" || *only == "placement" {
		res, err := placementBench(3)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: placement:", err)
			if *only == "placement" {
				os.Exit(1)
			}
		}
		all = append(all, res...)
	}
	if *only == "" || *only == "mcp" {
		res, err := mcpBench(bin, *mcpNodes, *mcpInstances, *mcpCalls)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: mcp:", err)
			if *only == "mcp" {
				os.Exit(1)
			}
		}
		all = append(all, res...)
	}
	if *only == "" || *only == "gossip" {
		for _, run := range []struct {
			n, deaths int
			loss      float64
		}{{100, 5, 0}, {200, 5, 0}, {100, 3, 0.1}} {
			res, err := gossipMembersBench(run.n, run.deaths, run.loss)
			if err != nil {
				fmt.Fprintln(os.Stderr, "bench: gossip members:", err)
				if *only == "gossip" {
					os.Exit(1)
				}
			}
			all = append(all, res...)
		}
		res, err := nodeDeathBench(bin, *deaths, *restarts)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: node deaths:", err)
			if *only == "gossip" {
				os.Exit(1)
			}
		}
		all = append(all, res...)
	}
	fmt.Printf("\n%-48s %-22s %s\n", "figure", "measured", "target")
	fmt.Println(strings.Repeat("-", 84))
	for _, r := range all {
		fmt.Printf("%-48s %-22s %s\n", r.name, r.value, r.target)
	}
}

type result struct{ name, value, target string }

func run(bin string, objects, clients int, profile string) ([]result, error) {
	dir, err := os.MkdirTemp("", "skiff-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	// First start creates the data directory; the timed start reuses it.
	srv, err := start(bin, dir)
	if err != nil {
		return nil, err
	}
	srv.stop()
	t0 := time.Now()
	srv, err = start(bin, dir)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	ready := time.Since(t0)
	time.Sleep(2 * time.Second) // let start-up garbage be collected before reading RSS
	idle := srv.rss()

	api, err := newClient(srv.kubeconfig)
	if err != nil {
		return nil, err
	}
	var rate float64
	err = api.profiling(profile, func() (err error) {
		rate, err = api.createMany(objects, clients)
		return err
	})
	if err != nil {
		return nil, err
	}
	// With -cpuprofile, the lists are profiled too (PATH.list).
	var listP50, listP99 time.Duration
	err = api.profiling(profileList(profile), func() (err error) {
		listP50, listP99, err = api.listLatency(20)
		return err
	})
	if err != nil {
		return nil, err
	}
	watchP50, watchP99, err := api.watchLatency(200)
	if err != nil {
		return nil, err
	}
	loaded := srv.rss()
	access, err := accessRates(api, srv.kubeconfig, objects/2, clients)
	if err != nil {
		return nil, err
	}

	results := []result{
		{fmt.Sprintf("creates/s, %d clients, 1 KB Workloads", clients), fmt.Sprintf("%.0f", rate), ">= 2000"},
		{fmt.Sprintf("list %d objects p50 / p99", objects), fmt.Sprintf("%s / %s", ms(listP50), ms(listP99)), "p99 < 300 ms"},
		{"watch delivery p50 / p99 (create to event)", fmt.Sprintf("%s / %s", ms(watchP50), ms(watchP99)), "p99 < 50 ms"},
		{"RSS idle", mb(idle), "< 120 MB"},
		{fmt.Sprintf("RSS with %d objects", objects), mb(loaded), ""},
		{"start to /readyz, existing data dir", ms(ready), "< 2 s"},
	}
	return append(results, access...), nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
func mb(b int64) string         { return fmt.Sprintf("%.0f MB", float64(b)/(1<<20)) }

type server struct {
	cmd        *exec.Cmd
	kubeconfig string
	url        string
}

// start runs a server without agent, and without controllers unless
// extra flags say otherwise: the apiserver's figures are its own.
func start(bin, dir string, extra ...string) (*server, error) {
	if len(extra) == 0 {
		extra = []string{"--disable-controllers"}
	}
	cmd := exec.Command(bin, append([]string{"server", "--data-dir", dir, "--listen", "127.0.0.1:0", "--disable-agent", "--gossip-bind", "127.0.0.1:0"}, extra...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, kubeconfig: filepath.Join(dir, "admin.kubeconfig")}
	url := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "skiff server listening on "); ok {
				url <- u
			}
		}
	}()
	var base string
	select {
	case base = <-url:
		s.url = base
	case <-time.After(60 * time.Second):
		s.stop()
		return nil, errors.New("server printed no URL within 60s")
	}
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := hc.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.stop()
	return nil, errors.New("server not ready within 60s")
}

func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

// rss reads the server's resident set size from /proc.
func (s *server) rss() int64 { return rssOf(s.cmd.Process.Pid) }

type client struct {
	host string
	base string
	hc   *http.Client
}

func newClient(kubeconfig string) (*client, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	return &client{host: cfg.Host, base: cfg.Host + "/apis/skiff.dev/v1alpha1/namespaces/default/workloads", hc: hc}, nil
}

// profiling runs f while the server's CPU is profiled to path (the
// first 5 s of it); with no path it only runs f.
func (c *client) profiling(path string, f func() error) error {
	wait := c.startProfile(path, 5)
	if err := f(); err != nil {
		return err
	}
	return wait()
}

// startProfile starts saving the server's CPU profile of the next seconds
// to path; wait returns once it is saved. With no path there is none.
func (c *client) startProfile(path string, seconds int) (wait func() error) {
	if path == "" {
		return func() error { return nil }
	}
	profiled := make(chan error, 1)
	go func() { profiled <- c.cpuProfile(path, seconds) }()
	return func() error { return <-profiled }
}

// profileList is where the lists' profile goes: beside path, if any.
func profileList(path string) string {
	if path == "" {
		return ""
	}
	return path + ".list"
}

// cpuProfile saves the server's CPU profile over the next seconds.
func (c *client) cpuProfile(path string, seconds int) error {
	resp, err := c.hc.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", c.host, seconds))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

func (c *client) create(name string) error {
	return c.post(c.base, name, loadgen.Workload(name))
}

// post creates one object at url.
func (c *client) post(url, name string, body []byte) error {
	return c.postContext(context.Background(), url, name, body)
}

// postContext is post, given up when ctx ends.
func (c *client) postContext(ctx context.Context, url, name string, body []byte) error {
	return loadgen.Create(ctx, c.hc, url, name, body)
}

func (c *client) createMany(n, workers int) (float64, error) {
	t0 := time.Now()
	err := inParallel(n, workers, func(i int) error { return c.create(fmt.Sprintf("bench-%d", i)) })
	return float64(n) / time.Since(t0).Seconds(), err
}

// inParallel calls do for 1 to n with workers goroutines; the first error
// stops the worker that met it and is returned.
func inParallel(n, workers int, do func(i int) error) error {
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				if err := do(int(i)); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

func (c *client) listLatency(rounds int) (p50, p99 time.Duration, err error) {
	var samples []time.Duration
	for i := 0; i < rounds; i++ {
		t0 := time.Now()
		resp, err := c.hc.Get(c.base)
		if err != nil {
			return 0, 0, err
		}
		// Time to the last byte of the response; the client's own JSON
		// parsing is not the server's latency.
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			return 0, 0, err
		}
		if resp.StatusCode != http.StatusOK {
			return 0, 0, fmt.Errorf("list: %s", resp.Status)
		}
		samples = append(samples, time.Since(t0))
	}
	return percentiles(samples)
}

// watchLatency creates objects one by one and times each until its ADDED
// event arrives on an open watch.
func (c *client) watchLatency(n int) (p50, p99 time.Duration, err error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"?watch=true&labelSelector=watch%3Dyes", nil)
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	events := make(chan string, 16)
	go func() {
		dec := json.NewDecoder(resp.Body)
		for {
			var ev struct {
				Object struct {
					Metadata struct{ Name string } `json:"metadata"`
				} `json:"object"`
			}
			if dec.Decode(&ev) != nil {
				close(events)
				return
			}
			events <- ev.Object.Metadata.Name
		}
	}()
	var samples []time.Duration
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("watch-%d", i)
		body := bytes.Replace(loadgen.Workload(name), []byte(`"bench":"yes"`), []byte(`"watch":"yes"`), 1)
		t0 := time.Now()
		r, err := c.hc.Post(c.base, "application/json", bytes.NewReader(body))
		if err != nil {
			return 0, 0, err
		}
		r.Body.Close()
		for got := range events {
			if got == name {
				break
			}
		}
		samples = append(samples, time.Since(t0))
	}
	return percentiles(samples)
}

func percentiles(s []time.Duration) (time.Duration, time.Duration, error) {
	if len(s) == 0 {
		return 0, 0, errors.New("no samples")
	}
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2], s[(len(s)*99)/100], nil
}
