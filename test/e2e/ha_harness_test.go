package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"skiff.dev/skiff/nodeagent/network/nettest"
)

// haCluster is a cluster of servers, each in its own network namespace
// (a host) on one LAN, which the test process is on too.
type haCluster struct {
	t     *testing.T
	lan   string
	net   string // the LAN's first three octets
	hosts map[string]*haHost
	// token is a server token of the cluster.
	token string
}

// haHost is one machine running a server.
type haHost struct {
	name, ns, link, ip, dataDir string
	s                           *server
}

// url is the host's API server.
func (h *haHost) url() string { return "https://" + h.ip + ":6443" }

func newHACluster(t *testing.T, net string) *haCluster {
	t.Helper()
	requireE2E(t)
	nettest.Skip(t)
	c := &haCluster{t: t, lan: nettest.LAN(t), net: net, hosts: map[string]*haHost{}}
	nettest.Attach(t, c.lan, "", net+".1/24")
	return c
}

// host makes host name (its namespace, link and data directory) with
// address net.(10+i).
func (c *haCluster) host(name string, i int) *haHost {
	c.t.Helper()
	h := &haHost{name: name, ns: nettest.Host(c.t, name), ip: fmt.Sprintf("%s.%d", c.net, 10+i), dataDir: c.t.TempDir()}
	h.link = nettest.Attach(c.t, c.lan, h.ns, h.ip+"/24")
	c.hosts[name] = h
	return h
}

// start runs h's server with the cluster flags given (--cluster-init,
// --join ...) and waits until it is ready.
func (c *haCluster) start(h *haHost, flags ...string) {
	c.t.Helper()
	args := append([]string{"--disable-agent", "--node-name", h.name,
		"--gossip-bind", h.ip + ":0", "--agent-gossip-bind", h.ip + ":0"}, flags...)
	h.s = startServerIn(c.t, h.ns, h.dataDir, h.ip+":6443", args...)
}

// join starts h's server joining the cluster through via's.
func (c *haCluster) join(h, via *haHost) {
	c.t.Helper()
	c.start(h, "--join", via.url(), "--token", c.token)
}

// serverToken makes a server token through h.
func (c *haCluster) serverToken(h *haHost) string {
	c.t.Helper()
	out, err := exec.Command(skiffBin, "token", "create", "--role", "server", "--kubeconfig", h.s.kubeconfig).Output()
	if err != nil {
		c.t.Fatalf("skiff token create --role server: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// members is `skiff server list` through h: role by server name.
func (c *haCluster) members(h *haHost) (map[string]string, error) {
	out, err := skiffCmd("server", "list", "--kubeconfig", h.s.kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("skiff server list: %v: %s", err, out)
	}
	roles := map[string]string{}
	for i, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); i > 0 && len(f) >= 2 {
			roles[f[0]] = f[1]
		}
	}
	return roles, nil
}

// waitVoters waits until the members through h are exactly names, each
// voting (one of them leading).
func (c *haCluster) waitVoters(h *haHost, names ...string) {
	c.t.Helper()
	waitFor(c.t, 90*time.Second, func() (bool, error) {
		roles, err := c.members(h)
		if err != nil || len(roles) != len(names) {
			return false, nil
		}
		for _, n := range names {
			if r := roles[n]; r != "voter" && r != "leader" {
				return false, nil
			}
		}
		return true, nil
	})
}

// leader is the name of etcd's leader, through h.
func (c *haCluster) leader(h *haHost) string {
	c.t.Helper()
	var name string
	waitFor(c.t, 30*time.Second, func() (bool, error) {
		roles, err := c.members(h)
		for n, r := range roles {
			if r == "leader" {
				name = n
			}
		}
		return err == nil && name != "", nil
	})
	return name
}

// client is a typed client of h's server.
func (c *haCluster) client(h *haHost) kubernetes.Interface {
	c.t.Helper()
	cfg := unthrottledConfig(c.t, h.s.kubeconfig)
	cfg.Timeout = 15 * time.Second
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	return cs
}

// cut isolates h from the other servers (not from the test): its
// namespace drops their packets both ways.
func (c *haCluster) cut(h *haHost) {
	c.t.Helper()
	for _, o := range c.hosts {
		if o != h {
			nettest.Run(c.t, h.ns, "iptables", "-A", "INPUT", "-s", o.ip, "-j", "DROP")
			nettest.Run(c.t, h.ns, "iptables", "-A", "OUTPUT", "-d", o.ip, "-j", "DROP")
		}
	}
}

// heal undoes cut.
func (c *haCluster) heal(h *haHost) {
	c.t.Helper()
	nettest.Run(c.t, h.ns, "iptables", "-F", "INPUT")
	nettest.Run(c.t, h.ns, "iptables", "-F", "OUTPUT")
}

// configMapNames lists the ConfigMaps of ns through cs.
func configMapNames(ctx context.Context, cs kubernetes.Interface, ns string) (map[string]bool, error) {
	list, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, cm := range list.Items {
		names[cm.Name] = true
	}
	return names, nil
}

// createLoad creates ConfigMaps in ns until stop is closed or n are
// acknowledged (n <= 0: no bound), spread over clients by workers
// goroutines. It returns the acknowledged names and the errors.
type createLoad struct {
	mu    sync.Mutex
	acked map[string]time.Time
	errs  []error
}

func runCreates(ctx context.Context, clients []kubernetes.Interface, ns, prefix string, n, workers int, stop <-chan struct{}) *createLoad {
	l := &createLoad{acked: map[string]time.Time{}}
	next := make(chan int)
	go func() {
		defer close(next)
		for i := 0; n <= 0 || i < n; i++ {
			select {
			case next <- i:
			case <-stop:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range next {
				name := fmt.Sprintf("%s-%05d", prefix, i)
				cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"i": fmt.Sprint(i)}}
				_, err := clients[(i+w)%len(clients)].CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
				l.mu.Lock()
				if err == nil {
					l.acked[name] = time.Now()
				} else {
					l.errs = append(l.errs, fmt.Errorf("%s: %w", name, err))
				}
				l.mu.Unlock()
			}
		})
	}
	wg.Wait()
	return l
}

// longestStall is the longest time after t without an acknowledgement
// until the last one: how long writes stopped.
func (l *createLoad) longestStall(t time.Time) (time.Duration, bool) {
	var after []time.Time
	for _, at := range l.acked {
		if at.After(t) {
			after = append(after, at)
		}
	}
	if len(after) == 0 {
		return 0, false
	}
	slices.SortFunc(after, time.Time.Compare)
	longest, prev := time.Duration(0), t
	for _, at := range after {
		longest = max(longest, at.Sub(prev))
		prev = at
	}
	return longest, true
}

// removeDir removes a directory a server wrote (its etcd).
func removeDir(t *testing.T, dir string) {
	t.Helper()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
}

// etcdDir is h's embedded etcd.
func (h *haHost) etcdDir() string { return filepath.Join(h.dataDir, "etcd") }

// waitGossip waits until every host's server sees the others alive in
// its gossip (/health's cluster component): the servers make one gossip
// cluster, so an agent joined to any of them is heard by all.
func (c *haCluster) waitGossip() {
	c.t.Helper()
	for _, h := range c.hosts {
		hc := h.s.anonymousClient(c.t)
		waitFor(c.t, 60*time.Second, func() (bool, error) {
			resp, err := hc.Get(h.url() + "/health")
			if err != nil {
				return false, nil
			}
			defer resp.Body.Close()
			var health struct {
				Components map[string]struct {
					Detail struct {
						Members map[string]int `json:"members"`
					} `json:"detail"`
				} `json:"components"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&health); err != nil {
				return false, nil
			}
			return health.Components["cluster"].Detail.Members["alive"] == len(c.hosts)-1, nil
		})
	}
}

// readmeHA runs the README's "High availability" lines on hosts s1, s2
// and s3, the README's 10.0.0.1, 10.0.0.2 and 10.0.0.3: each `skiff
// server` line starts that host's server with the line's flags (and the
// test's own: data directory, name, gossip on the host's address), the
// others run as a user on s1 would (KUBECONFIG its admin's).
func (c *haCluster) readmeHA() {
	c.t.Helper()
	env := []string{"KUBECONFIG=" + c.hosts["s1"].s.kubeconfig, "PATH=" + filepath.Dir(skiffBin) + ":/usr/local/bin:/usr/bin:/bin"}
	vars := map[string]string{}
	readmeAddr := regexp.MustCompile(`10\.0\.0\.([1-3])\b`)
	for _, line := range readmeLines(c.t, "## High availability") {
		line = readmeAddr.ReplaceAllStringFunc(line, func(a string) string {
			return fmt.Sprintf("%s.%d", c.net, 10+int(a[len(a)-1]-'0'))
		})
		for name, v := range vars {
			line = strings.ReplaceAll(line, `"$`+name+`"`, v)
		}
		if args, ok := strings.CutPrefix(line, "skiff server --"); ok {
			fields := strings.Fields("--" + args)
			var h *haHost
			for i, f := range fields {
				if f == "--listen" && i+1 < len(fields) {
					for _, o := range c.hosts {
						if strings.HasPrefix(fields[i+1], o.ip+":") {
							h = o
						}
					}
				}
			}
			if h == nil {
				c.t.Fatalf("README line %q: no --listen of a host", line)
			}
			c.t.Logf("$ %s   (on %s)", line, h.name)
			c.start(h, fields...)
			continue
		}
		name, cmdline, isVar := strings.Cut(line, "=$(")
		if isVar {
			cmdline = strings.TrimSuffix(cmdline, ")")
		} else {
			cmdline = line
		}
		cmd := exec.Command("sh", "-ec", cmdline)
		cmd.Env = env
		out, err := cmd.Output()
		c.t.Logf("$ %s\n%s", line, out)
		if err != nil {
			c.t.Fatalf("README line %q: %v", line, err)
		}
		if isVar {
			vars[name] = strings.TrimSpace(string(out))
		}
	}
	c.token = vars["TOKEN"]
}
