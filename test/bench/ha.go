package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"skiff.dev/skiff/internal/loadgen"
)

// haBench measures a cluster of three servers on this machine: creates/s
// spread over the three against one server's, and failover: the etcd
// leader's server killed (SIGKILL) kills times, each timed from the kill
// to the first write a surviving server acknowledges.
func haBench(bin string, objects, clients, kills int) ([]result, error) {
	root, err := os.MkdirTemp("", "skiff-bench-ha-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(root)

	one, err := start(bin, filepath.Join(root, "one"))
	if err != nil {
		return nil, err
	}
	single, err := spreadCreates([]*server{one}, "one", objects, clients)
	one.stop()
	if err != nil {
		return nil, fmt.Errorf("one server: %w", err)
	}

	c, err := startHACluster(bin, root)
	if err != nil {
		return nil, err
	}
	defer c.stop()
	three, err := spreadCreates(c.servers, "three", objects, clients)
	if err != nil {
		return nil, fmt.Errorf("three servers: %w", err)
	}
	var failovers []time.Duration
	for i := range kills {
		d, err := c.killLeader(i)
		if err != nil {
			return nil, fmt.Errorf("failover %d: %w", i+1, err)
		}
		failovers = append(failovers, d)
		fmt.Fprintf(os.Stderr, "failover %d: %s\n", i+1, ms(d))
	}
	p50, p99, err := percentiles(failovers)
	if err != nil {
		return nil, err
	}
	return []result{
		{fmt.Sprintf("creates/s, %d clients: one server", clients), fmt.Sprintf("%.0f", single), ""},
		{fmt.Sprintf("creates/s, %d clients: three servers", clients), fmt.Sprintf("%.0f", three), "(over one etcd quorum)"},
		{fmt.Sprintf("failover p50 / p99, %d leader kills", kills), fmt.Sprintf("%s / %s", ms(p50), ms(p99)), "kill -9 to the first write"},
	}, nil
}

// spreadCreates creates objects Workloads with clients workers, spread
// over the servers, and returns creates/s.
func spreadCreates(servers []*server, prefix string, objects, clients int) (float64, error) {
	var api []*client
	for _, s := range servers {
		c, err := newClient(s.kubeconfig)
		if err != nil {
			return 0, err
		}
		api = append(api, c)
	}
	t0 := time.Now()
	err := inParallel(objects, clients, func(i int) error {
		return api[i%len(api)].create(fmt.Sprintf("%s-%d", prefix, i))
	})
	return float64(objects) / time.Since(t0).Seconds(), err
}

// haCluster is three servers on loopback, each with its etcd peer port.
type haCluster struct {
	bin, root string
	servers   []*server
	dirs      []string
	peerPorts []int
}

func startHACluster(bin, root string) (*haCluster, error) {
	c := &haCluster{bin: bin, root: root}
	for i := range 3 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		c.dirs = append(c.dirs, filepath.Join(root, fmt.Sprintf("s%d", i+1)))
		c.peerPorts = append(c.peerPorts, port)
	}
	first, err := c.startServer(0, "--cluster-init")
	if err != nil {
		return nil, err
	}
	c.servers = append(c.servers, first)
	out, err := exec.Command(bin, "token", "create", "--role", "server", "--kubeconfig", first.kubeconfig).Output()
	if err != nil {
		c.stop()
		return nil, fmt.Errorf("server token: %w", err)
	}
	for i := 1; i < 3; i++ {
		s, err := c.startServer(i, "--join", first.url, "--token", strings.TrimSpace(string(out)))
		if err != nil {
			c.stop()
			return nil, err
		}
		c.servers = append(c.servers, s)
	}
	return c, c.waitVoters(first)
}

func (c *haCluster) startServer(i int, flags ...string) (*server, error) {
	return start(c.bin, c.dirs[i], append([]string{"--disable-controllers", "--node-name", fmt.Sprintf("s%d", i+1),
		"--etcd-peer-port", fmt.Sprint(c.peerPorts[i])}, flags...)...)
}

func (c *haCluster) stop() {
	var wg sync.WaitGroup
	for _, s := range c.servers {
		wg.Go(s.stop)
	}
	wg.Wait()
}

// member is a row of GET /skiff/cluster/members.
type member struct {
	Name    string `json:"name"`
	Learner bool   `json:"learner"`
	Leader  bool   `json:"leader"`
}

func (c *haCluster) members(via *server) ([]member, error) {
	api, err := newClient(via.kubeconfig)
	if err != nil {
		return nil, err
	}
	resp, err := api.hc.Get(api.host + "/skiff/cluster/members")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var ms []member
	return ms, json.NewDecoder(resp.Body).Decode(&ms)
}

// waitVoters waits until via lists three voting members with a leader.
func (c *haCluster) waitVoters(via *server) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		ms, err := c.members(via)
		if err == nil && len(ms) == 3 {
			leaders, learners := 0, 0
			for _, m := range ms {
				if m.Leader {
					leaders++
				}
				if m.Learner {
					learners++
				}
			}
			if leaders == 1 && learners == 0 {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("no three voting members within 2m")
}

// killLeader kills the etcd leader's server, times the first write a
// survivor acknowledges, and starts the killed server again.
func (c *haCluster) killLeader(round int) (time.Duration, error) {
	ms, err := c.members(c.servers[0])
	if err != nil {
		return 0, err
	}
	lead := -1
	for _, m := range ms {
		if m.Leader {
			fmt.Sscanf(m.Name, "s%d", &lead)
			lead--
		}
	}
	if lead < 0 {
		return 0, fmt.Errorf("no leader in %v", ms)
	}
	survivor := c.servers[(lead+1)%3]
	api, err := newClient(survivor.kubeconfig)
	if err != nil {
		return 0, err
	}
	// Writes are sent every 10 ms, each on its own and given up after a
	// second, as a retrying client does: a write the survivor forwarded
	// to the dead leader before it noticed waits out etcd's request
	// timeout (7 s), and must not hold back the next (nor, with the
	// server's seats per identity taken, keep it waiting).
	first := make(chan time.Duration, 1)
	stop := make(chan struct{})
	killed := time.Now()
	_ = c.servers[lead].cmd.Process.Kill()
	_ = c.servers[lead].cmd.Wait()
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			go func() {
				if api.createWithin(fmt.Sprintf("failover-%d-%d", round, i), time.Second) == nil {
					select {
					case first <- time.Since(killed):
					default:
					}
				}
			}()
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	var took time.Duration
	select {
	case took = <-first:
		close(stop)
	case <-time.After(time.Minute):
		close(stop)
		return 0, fmt.Errorf("no write acknowledged within a minute of the kill")
	}
	s, err := c.startServer(lead)
	if err != nil {
		return 0, err
	}
	c.servers[lead] = s
	return took, c.waitVoters(survivor)
}

// freePort is a TCP port free on loopback now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// createWithin creates one Workload, giving up after d.
func (c *client) createWithin(name string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return c.postContext(ctx, c.base, name, loadgen.Workload(name))
}
