package gossip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// cuttable is a real UDP/TCP transport whose member can be cut off from
// everyone (packets dropped both ways, connections refused) and healed.
type cuttable struct {
	*memberlist.NetTransport
	cut     atomic.Bool
	packets chan *memberlist.Packet
	streams chan net.Conn
	done    chan struct{}
	once    sync.Once
}

func newCuttable(t *testing.T) *cuttable {
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{"127.0.0.1"}, BindPort: 0})
	if err != nil {
		t.Fatal(err)
	}
	c := &cuttable{NetTransport: nt, packets: make(chan *memberlist.Packet), streams: make(chan net.Conn), done: make(chan struct{})}
	go func() {
		for {
			select {
			case p := <-nt.PacketCh():
				if !c.cut.Load() {
					select {
					case c.packets <- p:
					case <-c.done:
						return
					}
				}
			case conn := <-nt.StreamCh():
				if c.cut.Load() {
					_ = conn.Close()
					continue
				}
				select {
				case c.streams <- conn:
				case <-c.done:
					return
				}
			case <-c.done:
				return
			}
		}
	}()
	return c
}

var errCut = errors.New("cut off")

func (c *cuttable) PacketCh() <-chan *memberlist.Packet { return c.packets }
func (c *cuttable) StreamCh() <-chan net.Conn           { return c.streams }

func (c *cuttable) WriteTo(b []byte, addr string) (time.Time, error) {
	if c.cut.Load() {
		return time.Now(), nil // lost on the way
	}
	return c.NetTransport.WriteTo(b, addr)
}

func (c *cuttable) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return c.WriteTo(b, a.Addr)
}

func (c *cuttable) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if c.cut.Load() {
		return nil, errCut
	}
	return c.NetTransport.DialTimeout(addr, timeout)
}

func (c *cuttable) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return c.DialTimeout(a.Addr, timeout)
}

func (c *cuttable) Shutdown() error {
	c.once.Do(func() { close(c.done) })
	return c.NetTransport.Shutdown()
}

// TestHealedPartitionKillsNobody cuts one member off from everyone until
// it has declared them all dead (and they it), heals it, and checks that
// its stale verdicts make no healthy member dead in anyone's view.
func TestHealedPartitionKillsNobody(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a partition for about 20 s")
	}
	c := newCluster(t)
	transports := map[string]*cuttable{}
	var seeds []string
	for _, name := range []string{"a", "b", "c", "d"} {
		kr, err := NewKeyring(filepath.Join(t.TempDir(), "keyring"), c.keys)
		if err != nil {
			t.Fatal(err)
		}
		tr := newCuttable(t)
		known := append([]string(nil), seeds...)
		m, err := New(Config{
			Name: name, Role: RoleNode, PublicKey: "pk-" + name, Bind: "127.0.0.1:0", Keyring: kr, Transport: tr,
			Seeds:  func(context.Context) ([]string, error) { return known, nil },
			Timing: DefaultTiming(),
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		r := &running{m: m, cancel: cancel, done: make(chan struct{}), bind: m.Addr()}
		go func() { defer close(r.done); _ = m.Run(ctx) }()
		t.Cleanup(r.stop)
		c.members[name] = r
		transports[name] = tr
		seeds = append(seeds, m.Addr())
	}
	for name := range c.members {
		c.waitState(name, Alive, 20*time.Second)
	}
	island := c.members["d"].m
	transports["d"].cut.Store(true)
	c.waitState("d", Dead, 30*time.Second)
	waitUntil(t, 30*time.Second, func() bool {
		for _, name := range []string{"a", "b", "c"} {
			if mem, _ := island.Member(name); mem.State != Dead {
				return false
			}
		}
		return true
	})
	transports["d"].cut.Store(false)
	// d rejoins (every RejoinInterval) and refutes; meanwhile nobody may
	// see a, b or c dead.
	deadline := time.Now().Add(3 * DefaultTiming().RejoinInterval)
	for time.Now().Before(deadline) {
		for viewer, r := range c.members {
			if viewer == "d" {
				continue
			}
			for _, name := range []string{"a", "b", "c"} {
				if mem, _ := r.m.Member(name); name != viewer && mem.State.Ended() {
					t.Fatalf("%s sees %s %s after d's partition healed", viewer, name, mem.State)
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.waitState("d", Alive, 20*time.Second)
}

func waitUntil(t *testing.T, within time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal(fmt.Sprintf("not so after %s", within))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
