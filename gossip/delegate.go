package gossip

import (
	"encoding/json"
	"net"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"k8s.io/klog/v2"
)

// delegate is the Membership as memberlist's Delegate: metadata and the
// key operations of a rotation.
type delegate Membership

// msgKeyOp starts a user message carrying a keyOp (JSON).
const msgKeyOp = 'k'

func (d *delegate) NodeMeta(limit int) []byte {
	b, err := json.Marshal((*Membership)(d).localMeta())
	if err != nil || len(b) > limit {
		klog.ErrorS(err, "gossip: metadata too large", "bytes", len(b), "limit", limit)
		return nil
	}
	return b
}

// NotifyMsg applies a key operation: only a holder of a current key can
// have sent it, since every message is encrypted.
func (d *delegate) NotifyMsg(b []byte) {
	if len(b) == 0 || b[0] != msgKeyOp {
		return
	}
	var op keyOp
	if err := json.Unmarshal(b[1:], &op); err != nil {
		klog.ErrorS(err, "gossip: key operation")
		return
	}
	m := (*Membership)(d)
	if err := m.keyring.apply(op); err != nil {
		klog.ErrorS(err, "gossip: key operation")
		return
	}
	select {
	case m.keysChanged <- struct{}{}:
	default:
	}
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

// events is the Membership as memberlist's EventDelegate, AliveDelegate
// and PingDelegate: they feed its view of the others.
type events Membership

func (e *events) NotifyJoin(n *memberlist.Node)   { (*Membership)(e).joined(n) }
func (e *events) NotifyLeave(n *memberlist.Node)  { (*Membership)(e).ended(n) }
func (e *events) NotifyUpdate(n *memberlist.Node) { (*Membership)(e).set(n, "") }

// NotifyAlive hears every alive message: one about a member this member
// suspects is its refutation.
func (e *events) NotifyAlive(n *memberlist.Node) error {
	(*Membership)(e).refuted(n)
	return nil
}

func (e *events) AckPayload() []byte { return nil }

// NotifyPingComplete hears this member's successful probes.
func (e *events) NotifyPingComplete(n *memberlist.Node, rtt time.Duration, _ []byte) {
	m := (*Membership)(e)
	m.lastContact.Store(time.Now().UnixNano())
	m.metrics.rtt.Observe(rtt.Seconds())
	m.refuted(n)
}

// countingTransport is memberlist's UDP/TCP transport counting the bytes
// it sends.
type countingTransport struct {
	*memberlist.NetTransport
	sent atomic.Uint64
}

func (t *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	t.sent.Add(uint64(len(b)))
	return t.NetTransport.WriteTo(b, addr)
}

func (t *countingTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	t.sent.Add(uint64(len(b)))
	return t.NetTransport.WriteToAddress(b, a)
}

func (t *countingTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	c, err := t.NetTransport.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, sent: &t.sent}, nil
}

func (t *countingTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(a.Addr, timeout)
}

type countingConn struct {
	net.Conn
	sent *atomic.Uint64
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.sent.Add(uint64(n))
	return n, err
}
