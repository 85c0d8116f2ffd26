package gossip

import (
	"context"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"k8s.io/klog/v2"
)

// Membership is this process's member of the gossip cluster and its view
// of the others.
type Membership struct {
	cfg     Config
	ml      *memberlist.Memberlist
	keyring *Keyring
	metrics *metrics
	sent    *atomic.Uint64

	mu       sync.Mutex
	members  map[string]*Member
	watchers []chan<- string
	leaving  bool

	// lastContact is when a probe of another member last succeeded
	// (unix nanoseconds).
	lastContact atomic.Int64
	// lastRefute is when others last suspected this member (unix ns).
	lastRefute atomic.Int64
	// keysChanged wakes Run to announce new key fingerprints.
	keysChanged chan struct{}

	// confirming holds the members whose death is being confirmed by a
	// probe of this member's own (see confirmDeath), by attempt number.
	confirming map[string]uint64
	attempts   uint64
	// done ends the confirmations when the member stops; wg waits for them.
	done     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// New starts listening (the member is reachable once New returns) but
// joins nobody: Run does that.
func New(cfg Config) (*Membership, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	mc, err := cfg.memberlistConfig()
	if err != nil {
		return nil, err
	}
	m := &Membership{
		cfg: cfg, keyring: cfg.Keyring, metrics: newMetrics(),
		members: map[string]*Member{}, keysChanged: make(chan struct{}, 1),
		confirming: map[string]uint64{}, done: make(chan struct{}),
	}
	refuting := func() { m.lastRefute.Store(time.Now().UnixNano()) }
	logger := log.New(&logBridge{member: cfg.Name, suspects: m.suspected, refuting: refuting}, "", 0)
	mc.Logger = logger
	mc.Delegate, mc.Events, mc.Alive, mc.Ping = (*delegate)(m), (*events)(m), (*events)(m), (*events)(m)
	transport := cfg.Transport
	if transport == nil {
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{mc.BindAddr}, BindPort: mc.BindPort, Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("--gossip-bind %s: %w", cfg.Bind, err)
		}
		if mc.BindPort == 0 {
			mc.BindPort = nt.GetAutoBindPort()
			if cfg.Advertise == "" {
				mc.AdvertisePort = mc.BindPort
			}
		}
		ct := &countingTransport{NetTransport: nt}
		m.sent = &ct.sent
		transport = ct
	}
	if p, ok := transport.(interface{ GetAutoBindPort() int }); ok && mc.BindPort == 0 && cfg.Transport != nil {
		mc.BindPort = p.GetAutoBindPort()
		if cfg.Advertise == "" {
			mc.AdvertisePort = mc.BindPort
		}
	}
	mc.Transport = transport
	if m.ml, err = memberlist.Create(mc); err != nil {
		_ = transport.Shutdown()
		return nil, fmt.Errorf("gossip member %s: %w", cfg.Name, err)
	}
	return m, nil
}

// Name is this member's name.
func (m *Membership) Name() string { return m.cfg.Name }

// Addr is the address others reach this member at, ip:port.
func (m *Membership) Addr() string {
	n := m.ml.LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// Keyring is the member's keyring.
func (m *Membership) Keyring() *Keyring { return m.keyring }

// Run joins the seeds, keeps rejoining those it does not see alive (what
// heals a partition), and leaves or stops when ctx ends.
func (m *Membership) Run(ctx context.Context) error {
	defer m.stop()
	rejoin := time.NewTicker(m.cfg.Timing.RejoinInterval)
	defer rejoin.Stop()
	joining := make(chan struct{}, 1) // one join at a time: a dead seed's TCP timeout takes seconds
	join := func() {
		select {
		case joining <- struct{}{}:
		default:
			return
		}
		go func() {
			defer func() { <-joining }()
			m.join(ctx)
		}()
	}
	defer func() { joining <- struct{}{} }() // wait for a join in flight
	join()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-m.keysChanged:
			m.announce()
		case <-rejoin.C:
			join()
		}
	}
}

// stop leaves (with LeaveOnStop) and shuts the member down.
func (m *Membership) stop() {
	m.stopOnce.Do(func() { close(m.done) })
	defer m.wg.Wait()
	if m.cfg.LeaveOnStop {
		m.mu.Lock()
		m.leaving = true
		m.mu.Unlock()
		if err := m.ml.UpdateNode(time.Second); err != nil {
			klog.V(2).InfoS("gossip: announce leaving", "err", err)
		}
		if err := m.ml.Leave(2 * time.Second); err != nil {
			klog.V(2).InfoS("gossip: leave", "err", err)
		}
	}
	if err := m.ml.Shutdown(); err != nil {
		klog.ErrorS(err, "gossip: shut down", "member", m.cfg.Name)
	}
}

// join joins the seeds that are not alive members already: up to eight
// at random while this member sees nobody alive, else up to three.
func (m *Membership) join(ctx context.Context) {
	if m.cfg.Seeds == nil {
		return
	}
	seeds, err := m.cfg.Seeds(ctx)
	if err != nil {
		klog.V(2).InfoS("gossip: seeds", "err", err)
		return
	}
	// From this member's own view: memberlist's Members() shares nodes
	// that its handlers go on writing.
	alive := map[string]bool{m.Addr(): true}
	m.mu.Lock()
	for _, mem := range m.members {
		if mem.State == Alive {
			alive[mem.Addr] = true
		}
	}
	m.mu.Unlock()
	var todo []string
	for _, s := range seeds {
		if !alive[s] {
			todo = append(todo, s)
		}
	}
	if len(todo) == 0 {
		return
	}
	// A few at random: each dead seed costs a TCP timeout, and one live
	// seed is enough to learn everyone.
	limit := 3
	if m.ml.NumMembers() <= 1 {
		limit = 8
	}
	if len(todo) > limit {
		rand.Shuffle(len(todo), func(i, j int) { todo[i], todo[j] = todo[j], todo[i] })
		todo = todo[:limit]
	}
	if n, err := m.ml.Join(todo); n == 0 && err != nil {
		klog.V(2).InfoS("gossip: join", "seeds", todo, "err", err)
	}
}

// announce gossips this member's metadata again (after a key change).
func (m *Membership) announce() {
	if err := m.ml.UpdateNode(2 * time.Second); err != nil {
		klog.V(2).InfoS("gossip: announce metadata", "err", err)
	}
}

// Member returns this member's view of name.
func (m *Membership) Member(name string) (Member, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mem, ok := m.members[name]
	if !ok {
		return Member{}, false
	}
	return *mem, true
}

// Members returns this member's view of every other member it has seen.
func (m *Membership) Members() []Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Member, 0, len(m.members))
	for _, mem := range m.members {
		out = append(out, *mem)
	}
	return out
}

// Forget drops a member that is gone for good (its Node was deleted).
func (m *Membership) Forget(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.members, name)
	delete(m.confirming, name)
}

// Watch sends the name of each member whose state or metadata changes to
// ch. Sends do not block: a full channel misses names (watchers resync
// on their own schedule).
func (m *Membership) Watch(ch chan<- string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.watchers = append(m.watchers, ch)
}

// LastContact is when this member last heard an ack from another member
// (zero if never): a member that reaches nobody sees it grow old.
func (m *Membership) LastContact() time.Time {
	ns := m.lastContact.Load()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// Healthy reports whether another member answered within the last two
// probe intervals and nobody suspected this member for the last ten: a
// member others cannot reach, though it reaches them, is not healthy.
func (m *Membership) Healthy() bool {
	last := m.LastContact()
	t := m.cfg.Timing
	if last.IsZero() || time.Since(last) > 2*t.ProbeInterval+t.ProbeTimeout {
		return false
	}
	refuted := m.lastRefute.Load()
	return refuted == 0 || time.Since(time.Unix(0, refuted)) > 10*t.ProbeInterval
}

// HealthScore is Lifeguard's awareness of this member's own health: 0 is
// healthy, higher means its probes time out (it is slow or cut off).
func (m *Membership) HealthScore() int { return m.ml.GetHealthScore() }

// AliveMembers counts the other members this member sees alive.
func (m *Membership) AliveMembers() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, mem := range m.members {
		if mem.State == Alive {
			n++
		}
	}
	return n
}

// SentBytes is what this member has sent over the network (0 with a
// test transport).
func (m *Membership) SentBytes() uint64 {
	if m.sent == nil {
		return 0
	}
	return m.sent.Load()
}

// set records what memberlist says of n (its address and metadata) and,
// unless state is "", its state.
func (m *Membership) set(n *memberlist.Node, state State) {
	if n.Name == m.cfg.Name {
		return
	}
	m.mu.Lock()
	mem, ok := m.members[n.Name]
	if !ok {
		mem = &Member{Name: n.Name, State: Alive, Since: time.Now()}
		m.members[n.Name] = mem
	}
	mem.Addr = net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
	mem.Meta = parseMeta(n.Meta)
	m.mu.Unlock()
	if state == "" || !m.transition(n.Name, nil, state) {
		m.notify(n.Name) // new metadata (or a new member) still interests the watchers
	}
}

// transition moves a known member to state, if its current state is one
// of from (nil: any), and tells the watchers. A member that said it was
// leaving ends "left", not "dead".
func (m *Membership) transition(name string, from []State, state State) bool {
	m.mu.Lock()
	mem, ok := m.members[name]
	if !ok || mem.State == state || (from != nil && !slices.Contains(from, mem.State)) {
		m.mu.Unlock()
		return false
	}
	if state == Dead && mem.Leaving {
		state = Left
	}
	if state == Suspect {
		m.metrics.suspicions.Inc()
	}
	mem.State, mem.Since = state, time.Now()
	m.mu.Unlock()
	m.notify(name)
	return true
}

// notify sends name to every watcher without blocking.
func (m *Membership) notify(name string) {
	m.mu.Lock()
	watchers := m.watchers
	m.mu.Unlock()
	for _, ch := range watchers {
		select {
		case ch <- name:
		default:
		}
	}
}

// suspected marks an alive member suspect (this member's probe of it failed).
func (m *Membership) suspected(name string) { m.transition(name, []State{Alive}, Suspect) }

// refuted marks a suspect alive again (it answered, or refuted).
func (m *Membership) refuted(n *memberlist.Node) { m.transition(n.Name, []State{Suspect}, Alive) }

// localMeta is this member's metadata.
func (m *Membership) localMeta() Meta {
	keys, primary := m.keyring.Fingerprints()
	m.mu.Lock()
	defer m.mu.Unlock()
	return Meta{PublicKey: m.cfg.PublicKey, Role: m.cfg.Role, Keys: keys, Primary: primary, Leaving: m.leaving}
}
