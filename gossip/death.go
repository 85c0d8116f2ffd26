package gossip

import (
	"net"
	"time"

	"github.com/hashicorp/memberlist"
	"k8s.io/klog/v2"
)

// A death this member did not see for itself is confirmed before it is
// believed. memberlist accepts "dead" from any member, and a member that
// was cut off from everyone declares everyone dead: when its link comes
// back, its stale verdicts reach the others, which would take healthy
// members for dead until they refute (a second later, but the control
// plane acts on "dead" at once). So:
//
//   - a member that left, or whose death follows a failed probe of this
//     member's own (its view is Suspect), ends at once;
//   - any other death is someone else's word: the member stays Suspect
//     while this member probes it directly; no answer makes it Dead, an
//     answer keeps it Suspect until its refutation arrives (memberlist
//     then reports it alive again), probing again every ProbeInterval.
//
// A real death costs at most one probe timeout more this way, and only
// when this member had not probed the dead one itself.

// joined hears memberlist declare n alive (a new member, or one back from
// the dead): any confirmation of its death ends.
func (m *Membership) joined(n *memberlist.Node) {
	m.mu.Lock()
	delete(m.confirming, n.Name)
	m.mu.Unlock()
	m.set(n, Alive)
}

// ended hears memberlist declare n dead or left.
func (m *Membership) ended(n *memberlist.Node) {
	if n.Name == m.cfg.Name {
		return
	}
	m.set(n, "") // its address and metadata, e.g. that it was leaving
	m.mu.Lock()
	mem, known := m.members[n.Name]
	if !known {
		// Forgotten meanwhile: nothing left to end.
		delete(m.confirming, n.Name)
		m.mu.Unlock()
		return
	}
	if n.State == memberlist.StateLeft || mem.Leaving || mem.State == Suspect {
		delete(m.confirming, n.Name)
		m.mu.Unlock()
		m.transition(n.Name, nil, Dead) // Left, for a member that was leaving
		return
	}
	if _, ok := m.confirming[n.Name]; ok {
		m.mu.Unlock()
		return
	}
	m.attempts++
	attempt := m.attempts
	m.confirming[n.Name] = attempt
	m.mu.Unlock()
	m.transition(n.Name, []State{Alive}, Suspect)
	addr := &net.UDPAddr{IP: n.Addr, Port: int(n.Port)}
	// memberlist holds its node lock while it calls NotifyLeave: the
	// probe must not run here.
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.confirmDeath(n.Name, addr, attempt)
	}()
}

// confirmDeath probes name at addr until it fails to answer (then it is
// Dead), memberlist reports it alive again, or the member stops.
func (m *Membership) confirmDeath(name string, addr net.Addr, attempt uint64) {
	for answered := 0; ; answered++ {
		if _, err := m.ml.Ping(name, addr); err != nil {
			if m.stillConfirming(name, attempt, true) {
				m.transition(name, nil, Dead)
			}
			return
		}
		if answered == 0 {
			klog.V(2).InfoS("gossip: a member declared dead by another answers this member's probe; waiting for its refutation", "member", name)
		}
		select {
		case <-m.done:
			return
		case <-time.After(m.cfg.Timing.ProbeInterval):
		}
		if !m.stillConfirming(name, attempt, false) {
			return
		}
	}
}

// stillConfirming reports whether attempt is still the confirmation of
// name's death, and ends it if finish is set.
func (m *Membership) stillConfirming(name string, attempt uint64, finish bool) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.confirming[name] != attempt {
		return false
	}
	if finish {
		delete(m.confirming, name)
	}
	return true
}
