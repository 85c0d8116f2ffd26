package gossip

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// cluster is many members in one process, each on its own loopback
// sockets, as memberlist's own tests run them.
type cluster struct {
	t       *testing.T
	keys    Keys
	members map[string]*running
}

type running struct {
	m      *Membership
	cancel context.CancelFunc
	done   chan struct{}
	bind   string
}

func newCluster(t *testing.T) *cluster {
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{t: t, keys: encodeKeys([][]byte{key}), members: map[string]*running{}}
}

// seeds are the members started so far.
func (c *cluster) seeds(context.Context) ([]string, error) {
	var out []string
	for _, r := range c.members {
		out = append(out, r.m.Addr())
	}
	return out, nil
}

// start runs a member named name on bind (127.0.0.1:0 for any port).
func (c *cluster) start(name, bind string, keys Keys, leaveOnStop bool) *running {
	c.t.Helper()
	kr, err := NewKeyring(filepath.Join(c.t.TempDir(), "keyring"), keys)
	if err != nil {
		c.t.Fatal(err)
	}
	seeds, _ := c.seeds(context.Background())
	m, err := New(Config{
		Name: name, Role: RoleNode, PublicKey: "pk-" + name, Bind: bind, Keyring: kr,
		Seeds:  func(context.Context) ([]string, error) { return seeds, nil },
		Timing: DefaultTiming(), LeaveOnStop: leaveOnStop,
	})
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{m: m, cancel: cancel, done: make(chan struct{}), bind: m.Addr()}
	go func() { defer close(r.done); _ = m.Run(ctx) }()
	c.t.Cleanup(r.stop)
	return r
}

func (r *running) stop() {
	r.cancel()
	<-r.done
}

// waitState waits until every running member but the one named sees it
// in state want.
func (c *cluster) waitState(name string, want State, within time.Duration) time.Duration {
	c.t.Helper()
	start := time.Now()
	deadline := start.Add(within)
	for {
		missing := ""
		for n, r := range c.members {
			if n == name {
				continue
			}
			if mem, ok := r.m.Member(name); !ok || mem.State != want {
				missing = fmt.Sprintf("%s sees %s as %q", n, name, mem.State)
				break
			}
		}
		if missing == "" {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("after %s: %s, want %s", within, missing, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMembership(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 20-member cluster for about a minute")
	}
	c := newCluster(t)
	const n = 20
	for i := range n {
		name := fmt.Sprintf("n%02d", i)
		c.members[name] = c.start(name, "127.0.0.1:0", c.keys, true)
	}
	// Join: everyone sees everyone alive, with its metadata.
	for name := range c.members {
		c.waitState(name, Alive, 20*time.Second)
	}
	if mem, _ := c.members["n00"].m.Member("n01"); mem.PublicKey != "pk-n01" || mem.Role != RoleNode || len(mem.Keys) != 1 {
		t.Errorf("n00's view of n01: %+v", mem)
	}

	// Leave: a member that says goodbye is "left" everywhere at once.
	left := c.members["n19"]
	delete(c.members, "n19")
	left.stop()
	c.waitState("n19", Left, 5*time.Second)

	// Death: a member that stops without a word is suspect, then dead.
	dead := c.members["n18"]
	dead.m.cfg.LeaveOnStop = false
	delete(c.members, "n18")
	watch := make(chan string, 64)
	c.members["n00"].m.Watch(watch)
	dead.stop()
	took := c.waitState("n18", Dead, 20*time.Second)
	t.Logf("death of 1 in %d members declared everywhere in %s", n-1, took)
	sawSuspect := false
	for _, r := range c.members {
		if counterValue(r.m.metrics.suspicions) > 0 {
			sawSuspect = true
		}
	}
	if !sawSuspect {
		t.Error("no member counted a suspicion before the death")
	}
	select {
	case name := <-watch:
		if name != "n18" {
			t.Errorf("watch: %q, want n18", name)
		}
	default:
		t.Error("the watcher heard of no change")
	}

	// Refutation: a member killed and restarted at once, at the same
	// address, is never declared dead.
	restarted := c.members["n17"]
	restarted.m.cfg.LeaveOnStop = false
	delete(c.members, "n17")
	restarted.stop()
	time.Sleep(500 * time.Millisecond) // the restart's own duration
	back := c.start("n17", restarted.bind, c.keys, true)
	c.members["n17"] = back
	deadline := time.Now().Add(12 * time.Second)
	for time.Now().Before(deadline) {
		for name, r := range c.members {
			if mem, _ := r.m.Member("n17"); name != "n17" && mem.State.Ended() {
				t.Fatalf("%s declared the restarted n17 %s", name, mem.State)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.waitState("n17", Alive, 5*time.Second)
	if h := c.members["n00"].m.Healthy(); !h {
		t.Error("n00 is not healthy though it reaches its peers")
	}
}

func TestStrangerWithoutKeyCannotJoin(t *testing.T) {
	c := newCluster(t)
	for _, name := range []string{"a", "b"} {
		c.members[name] = c.start(name, "127.0.0.1:0", c.keys, true)
	}
	c.waitState("a", Alive, 10*time.Second)
	other, _ := NewKey()
	stranger := c.start("stranger", "127.0.0.1:0", encodeKeys([][]byte{other}), true)
	time.Sleep(3 * time.Second) // several gossip and probe rounds
	for name, r := range c.members {
		if _, ok := r.m.Member("stranger"); ok {
			t.Errorf("%s knows the stranger", name)
		}
	}
	if got := stranger.m.AliveMembers(); got != 0 {
		t.Errorf("the stranger sees %d members alive", got)
	}
}

func TestRotateKey(t *testing.T) {
	c := newCluster(t)
	for i := range 5 {
		name := fmt.Sprintf("r%d", i)
		c.members[name] = c.start(name, "127.0.0.1:0", c.keys, true)
	}
	for name := range c.members {
		c.waitState(name, Alive, 10*time.Second)
	}
	watch := make(chan string, 1024)
	for _, r := range c.members {
		r.m.Watch(watch)
	}
	key, _ := NewKey()
	if err := c.members["r0"].m.Rotate(context.Background(), key, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	fp := Fingerprint(key)
	for name, r := range c.members {
		keys, primary := r.m.keyring.Fingerprints()
		if primary != fp || len(keys) != 1 {
			t.Errorf("%s after the rotation: keys %v, primary %s, want only %s", name, keys, primary, fp)
		}
		// The file holds what the member uses, for its next start.
		saved, err := LoadKeyring(r.m.keyring.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := saved.Keys(); len(got.Keys) != 1 || got.Keys[0] != r.m.keyring.Keys().Keys[0] {
			t.Errorf("%s keyring file: %v", name, got)
		}
		if fi, _ := os.Stat(r.m.keyring.path); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s keyring file mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
	// Nobody flapped: no member was ever seen anything but alive.
	for _, r := range c.members {
		for _, mem := range r.m.Members() {
			if mem.State != Alive {
				t.Errorf("%s sees %s %s after the rotation", r.m.Name(), mem.Name, mem.State)
			}
		}
		if counterValue(r.m.metrics.suspicions) != 0 {
			t.Errorf("%s suspected someone during the rotation", r.m.Name())
		}
	}
	// A member with only the old key is now a stranger.
	late := c.start("late", "127.0.0.1:0", c.keys, true)
	time.Sleep(3 * time.Second)
	if late.m.AliveMembers() != 0 {
		t.Error("a member with the removed key joined")
	}
}
