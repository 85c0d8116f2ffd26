package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// loadedCluster is a server with its controllers and a simulated fleet of
// Ready nodes, with a watch of every Instance and the counters a burst is
// measured against, all taken before the load.
type loadedCluster struct {
	dir    string
	srv    *server
	api    *client
	fleet  *fleetProcess
	events <-chan instanceEvent
	stop   func()

	writes0                 map[string]float64
	cpu0, fleetCPU0, bench0 float64
}

// startLoadedCluster starts the server and a fleet of n nodes run with
// the agent flags fleetArgs, and waits until every node is Ready.
func startLoadedCluster(bin string, n int, fleetArgs ...string) (*loadedCluster, error) {
	// A fleet in the same process as the load shares the two cores with
	// the control plane; its renewals can lag past the 15 s default grace
	// and its nodes would be given up: the benchmark measures scheduling.
	dir, srv, api, err := tempServer(bin, "skiff-bench-controllers-", "--workers", "8", "--node-grace-period", "60s", "--cluster-cidr", "10.0.0.0/8")
	if err != nil {
		return nil, err
	}
	lc := &loadedCluster{dir: dir, srv: srv, api: api, stop: func() {}}
	// The simulated nodes renew their Leases as agents whose gossip is
	// healthy do (--gossip-lease-interval's 40 s): gossip, not the Lease,
	// is then the heartbeat. The fleet does not gossip; each renewal
	// vouches for its lease duration, three intervals.
	if lc.fleet, err = startFleet(bin, dir, srv, api, n, 40*time.Second, fleetArgs...); err != nil {
		lc.close()
		return nil, err
	}
	// Every node Ready, with its subnet, before the load: the scheduler
	// places on all of them from the first Instance.
	if err := api.waitNodesReady(n, 5*time.Minute); err != nil {
		lc.close()
		return nil, err
	}
	rv, err := api.instancesRV()
	if err != nil {
		lc.close()
		return nil, err
	}
	if lc.events, lc.stop, err = api.watchInstances(rv); err != nil {
		lc.close()
		return nil, err
	}
	if lc.writes0, err = api.writeCounts(); err != nil {
		lc.close()
		return nil, err
	}
	lc.cpu0 = cpuSeconds(srv.cmd.Process.Pid)
	lc.fleetCPU0, lc.bench0 = cpuSeconds(lc.fleet.Process.Pid), cpuSeconds(os.Getpid())
	return lc, nil
}

func (lc *loadedCluster) close() {
	lc.stop()
	if lc.fleet != nil {
		lc.fleet.stop()
	}
	lc.srv.stop()
	os.RemoveAll(lc.dir)
}

// apply creates workloads Workloads of replicas each.
func (lc *loadedCluster) apply(workloads, replicas int) error {
	for i := range workloads {
		if err := lc.api.createWorkload(fmt.Sprintf("load-%d", i), replicas); err != nil {
			return err
		}
	}
	return nil
}

// burst is what the watch saw of total Instances from the apply on.
type burst struct {
	firstBind, lastBind time.Time
	// toRunning is each Running Instance's time from its creation.
	toRunning []time.Duration
}

func (b burst) bindsPerSecond(total int) float64 {
	return float64(total) / b.lastBind.Sub(b.firstBind).Seconds()
}

// follow reads the watch until all total Instances are Running, or only
// until all are bound when untilBound.
func (lc *loadedCluster) follow(t0 time.Time, total int, untilBound bool) (burst, error) {
	type seen struct{ added, bound, running time.Time }
	var b burst
	by := map[string]*seen{}
	bound, running := 0, 0
	deadline := time.After(10 * time.Minute)
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for (untilBound && bound < total) || (!untilBound && running < total) {
		var ev instanceEvent
		select {
		case <-tick.C:
			fmt.Fprintf(os.Stderr, "bench: %s: %d instances seen, %d bound, %d running\n", time.Since(t0).Round(time.Second), len(by), bound, running)
			continue
		case ev = <-lc.events:
		case <-deadline:
			return b, fmt.Errorf("after 10 minutes, of %d instances %d are bound and %d running", total, bound, running)
		}
		if ev.err != nil {
			return b, ev.err
		}
		s := by[ev.name]
		if s == nil {
			s = &seen{added: ev.at}
			by[ev.name] = s
		}
		if ev.node != "" && s.bound.IsZero() {
			s.bound = ev.at
			bound++
			if b.firstBind.IsZero() {
				b.firstBind = ev.at
			}
			b.lastBind = ev.at
		}
		if ev.phase == "Running" && s.running.IsZero() {
			s.running = ev.at
			running++
			b.toRunning = append(b.toRunning, s.running.Sub(s.added))
		}
	}
	return b, nil
}

// controllersBench runs a server with its controllers and a simulated
// fleet of n nodes, applies workloads Workloads of replicas each, and
// watches every Instance from creation to Running: the time until all run,
// the scheduler's binds/s, create-to-Running latency, and the control
// plane's RSS and CPU seconds. With a profile path, the server's CPU is
// profiled over the burst's first 25 s.
func controllersBench(bin string, n, workloads, replicas int, profile string) ([]result, error) {
	lc, err := startLoadedCluster(bin, n)
	if err != nil {
		return nil, err
	}
	defer lc.close()
	srv, api := lc.srv, lc.api
	profiled := api.startProfile(profile, 25)
	t0 := time.Now()
	if err := lc.apply(workloads, replicas); err != nil {
		return nil, err
	}
	total := workloads * replicas
	b, err := lc.follow(t0, total, false)
	if err != nil {
		return nil, err
	}
	allRunning := time.Since(t0)
	cpu := cpuSeconds(srv.cmd.Process.Pid) - lc.cpu0
	if err := profiled(); err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	fleetCPU := cpuSeconds(lc.fleet.Process.Pid) - lc.fleetCPU0
	benchCPU := cpuSeconds(os.Getpid()) - lc.bench0
	writes, err := api.writeCounts()
	if err != nil {
		return nil, err
	}
	p50, p99, err := percentiles(b.toRunning)
	if err != nil {
		return nil, err
	}
	label := fmt.Sprintf("controllers %d nodes, %dx%d", n, workloads, replicas)
	res := []result{
		{label + ": all Running", fmt.Sprintf("%.1f s", allRunning.Seconds()), "<= 30 s (1000 nodes, 10k)"},
		{label + ": scheduler binds/s", fmt.Sprintf("%.0f", b.bindsPerSecond(total)), ">= 1000 at 5000 nodes"},
		{label + ": create-to-Running p50/p99", ms(p50) + " / " + ms(p99), "p99 <= 2 s at 1000 nodes"},
		// RssFile is mostly etcd's database, mapped: pages the kernel may
		// drop and read again, unlike the heap's.
		{label + ": control plane RSS", fmt.Sprintf("%s (anonymous %s, file %s)", mb(srv.rss()),
			mb(statusKB(srv.cmd.Process.Pid, "RssAnon:")), mb(statusKB(srv.cmd.Process.Pid, "RssFile:"))), "<= 1 GB at 10k instances"},
		{label + ": control plane CPU", fmt.Sprintf("%.1f s (%.1f ms per Instance)", cpu, cpu*1000/float64(total)), "<= 6 ms per Instance"},
		{label + ": API writes per Instance", writesPer(lc.writes0, writes, total), ""},
		// The same cores run the simulated fleet and this watcher: what
		// they take is not the control plane's, but it is not the
		// control plane's to use either.
		{label + ": fleet / bench watcher CPU", fmt.Sprintf("%.1f s / %.1f s", fleetCPU, benchCPU), ""},
	}
	// Then a steady trickle on the loaded cluster: how long one Instance
	// takes when the control plane is not saturated.
	s50, s99, err := api.steady(50, 20*time.Second)
	if err != nil {
		return nil, fmt.Errorf("steady creates: %w", err)
	}
	res = append(res, result{label + ": then 50 Instances/s, create-to-Running p50/p99", ms(s50) + " / " + ms(s99), "p99 <= 2 s at 1000 nodes"})
	// Printed at once too: the next fleet takes minutes.
	for _, r := range res {
		fmt.Fprintf(os.Stderr, "bench: %s: %s\n", r.name, r.value)
	}
	return res, nil
}

func (c *client) createWorkload(name string, replicas int) error {
	body := fmt.Sprintf(`{"apiVersion":"skiff.dev/v1alpha1","kind":"Workload","metadata":{"name":%q},"spec":{"replicas":%d,"template":{"metadata":{"labels":{"app":%q}},"spec":{"containers":[{"name":"main","image":"registry.local/load:1","resources":{"requests":{"cpu":"10m","memory":"16Mi"}}}]}}}}`,
		name, replicas, name)
	return c.post(c.base, name, []byte(body))
}

func (c *client) instancesURL() string {
	return c.host + "/apis/skiff.dev/v1alpha1/namespaces/default/instances"
}

func (c *client) instancesRV() (string, error) {
	resp, err := c.hc.Get(c.instancesURL() + "?limit=1")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var list struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return "", err
	}
	return list.Metadata.ResourceVersion, nil
}

// instanceEvent is what the benchmark reads of one watch event.
type instanceEvent struct {
	name, node, phase string
	at                time.Time
	err               error
}

// watchInstances streams Instance events from rv, timestamped on arrival.
// The apiserver may end a watch (a slow reader, its timeout): it is
// resumed from the last resourceVersion seen.
func (c *client) watchInstances(rv string) (<-chan instanceEvent, func(), error) {
	hc := *c.hc
	hc.Timeout = 0
	out := make(chan instanceEvent, 1<<16)
	done := make(chan struct{})
	var once sync.Once
	stop := func() { once.Do(func() { close(done) }) }
	open := func(rv string) (io.ReadCloser, error) {
		resp, err := hc.Get(c.instancesURL() + "?watch=true&allowWatchBookmarks=true&resourceVersion=" + rv + "&timeoutSeconds=1200")
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, fmt.Errorf("watch instances: %s", resp.Status)
		}
		return resp.Body, nil
	}
	body, err := open(rv)
	if err != nil {
		return nil, nil, err
	}
	go func() {
		defer close(out)
		for {
			go func(b io.ReadCloser) { <-done; b.Close() }(body)
			rv = decodeEvents(body, rv, out)
			select {
			case <-done:
				return
			default:
			}
			if body, err = open(rv); err != nil {
				out <- instanceEvent{err: err}
				return
			}
		}
	}()
	return out, stop, nil
}

// decodeEvents sends the events of one watch response until it ends and
// returns the last resourceVersion seen.
func decodeEvents(body io.Reader, rv string, out chan<- instanceEvent) string {
	dec := json.NewDecoder(bufio.NewReaderSize(body, 1<<20))
	for {
		var ev struct {
			Type   string `json:"type"`
			Object struct {
				Metadata struct {
					Name            string `json:"name"`
					ResourceVersion string `json:"resourceVersion"`
				} `json:"metadata"`
				Spec struct {
					NodeName string `json:"nodeName"`
				} `json:"spec"`
				Status struct {
					Phase string `json:"phase"`
				} `json:"status"`
			} `json:"object"`
		}
		if err := dec.Decode(&ev); err != nil {
			return rv
		}
		rv = ev.Object.Metadata.ResourceVersion
		if ev.Type == "BOOKMARK" || ev.Type == "ERROR" {
			continue
		}
		out <- instanceEvent{name: ev.Object.Metadata.Name, node: ev.Object.Spec.NodeName, phase: ev.Object.Status.Phase, at: time.Now()}
	}
}

// cpuSeconds reads a process's user and system CPU time from /proc.
func cpuSeconds(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ
}

// writeCounts reads the server's apiserver_request_total and sums the
// writes (POST, PUT, PATCH, APPLY, DELETE) by resource and subresource,
// e.g. "instances/status PUT".
func (c *client) writeCounts() (map[string]float64, error) {
	resp, err := c.hc.Get(c.host + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		end := strings.LastIndexByte(line, '}')
		labels := map[string]string{}
		for _, kv := range strings.Split(line[len("apiserver_request_total{"):end], ",") {
			k, v, _ := strings.Cut(kv, "=")
			labels[k] = strings.Trim(v, `"`)
		}
		switch labels["verb"] {
		case "POST", "PUT", "PATCH", "APPLY", "DELETE":
		default:
			continue
		}
		n, err := strconv.ParseFloat(strings.TrimSpace(line[end+1:]), 64)
		if err != nil {
			continue
		}
		key := labels["resource"]
		if s := labels["subresource"]; s != "" {
			key += "/" + s
		}
		out[key+" "+labels["verb"]] += n
	}
	return out, sc.Err()
}

// writesPer says the writes made between two writeCounts per Instance,
// largest first: "4.02 (instances POST 1.00, ...)".
func writesPer(before, after map[string]float64, instances int) string {
	type kv struct {
		k string
		v float64
	}
	var rows []kv
	total := 0.0
	for k, v := range after {
		if d := (v - before[k]) / float64(instances); d >= 0.005 {
			rows = append(rows, kv{k, d})
			total += d
		}
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].v > rows[j].v })
	parts := make([]string, len(rows))
	for i, r := range rows {
		parts[i] = fmt.Sprintf("%s %.2f", r.k, r.v)
	}
	return fmt.Sprintf("%.2f (%s)", total, strings.Join(parts, ", "))
}

// steady creates Instances (scheduled, not bound by the client) at rate
// per second for d and times each from its create to Running as a watch
// shows it: the latency a user sees on a cluster that is not saturated.
func (c *client) steady(rate int, d time.Duration) (p50, p99 time.Duration, err error) {
	rv, err := c.instancesRV()
	if err != nil {
		return 0, 0, err
	}
	events, stop, err := c.watchInstances(rv)
	if err != nil {
		return 0, 0, err
	}
	defer stop()
	n := rate * int(d/time.Second)
	sent := make([]atomic.Int64, n) // unix nanoseconds
	errs := make(chan error, n)
	done := make(chan struct{})
	defer close(done)
	go func() {
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for i := range n {
			select {
			case <-tick.C:
			case <-done:
				return
			}
			sent[i].Store(time.Now().UnixNano())
			go func(i int) {
				body := fmt.Sprintf(`{"apiVersion":"skiff.dev/v1alpha1","kind":"Instance","metadata":{"name":"steady-%d","labels":{"app":"steady"}},"spec":{"containers":[{"name":"main","image":"registry.local/load:1","resources":{"requests":{"cpu":"10m","memory":"16Mi"}}}]}}`, i)
				errs <- c.post(c.instancesURL(), fmt.Sprintf("steady-%d", i), []byte(body))
			}(i)
		}
	}()
	var lat []time.Duration
	seen := map[string]bool{}
	deadline := time.After(d + 2*time.Minute)
	for len(lat) < n {
		select {
		case err := <-errs:
			if err != nil {
				return 0, 0, err
			}
		case ev := <-events:
			if ev.err != nil {
				return 0, 0, ev.err
			}
			var i int
			if _, err := fmt.Sscanf(ev.name, "steady-%d", &i); err != nil || ev.phase != "Running" || seen[ev.name] {
				continue
			}
			seen[ev.name] = true
			lat = append(lat, ev.at.Sub(time.Unix(0, sent[i].Load())))
		case <-deadline:
			return 0, 0, fmt.Errorf("%d of %d steady Instances running", len(lat), n)
		}
	}
	return percentiles(lat)
}
