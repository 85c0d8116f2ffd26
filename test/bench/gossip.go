package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"time"

	"github.com/hashicorp/memberlist"

	"skiff.dev/skiff/gossip"
)

// gossipMembersBench runs n gossip members in this process, each on its
// own loopback sockets with the agents' timing, and reports how long a
// death takes to be known everywhere, how many live members were ever
// taken for suspect or dead (false positives), and the bytes each member
// sends a second. With loss > 0 every member drops that share of its
// outgoing UDP packets.
func gossipMembersBench(n, deaths int, loss float64) ([]result, error) {
	key, err := gossip.NewKey()
	if err != nil {
		return nil, err
	}
	keys := gossip.Keys{Keys: []string{encodeKey(key)}}
	members := map[string]*benchMember{}
	var first string
	for i := range n {
		kr, err := gossip.NewKeyring("", keys)
		if err != nil {
			return nil, err
		}
		var transport memberlist.NodeAwareTransport
		if loss > 0 {
			nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{"127.0.0.1"}})
			if err != nil {
				return nil, err
			}
			transport = &lossyTransport{NetTransport: nt, loss: loss}
		}
		name := fmt.Sprintf("m%03d", i)
		seed := first
		m, err := gossip.New(gossip.Config{
			Name: name, Role: gossip.RoleNode, Bind: "127.0.0.1:0", Keyring: kr, Timing: gossip.DefaultTiming(), Transport: transport,
			Seeds: func(context.Context) ([]string, error) {
				if seed == "" {
					return nil, nil
				}
				return []string{seed}, nil
			},
		})
		if err != nil {
			return nil, err
		}
		if first == "" {
			first = m.Addr()
		}
		ctx, cancel := context.WithCancel(context.Background())
		r := &benchMember{m: m, cancel: cancel, done: make(chan struct{})}
		go func() { defer close(r.done); _ = m.Run(ctx) }()
		members[name] = r
	}
	defer func() {
		for _, r := range members {
			r.cancel()
			<-r.done
		}
	}()
	t0 := time.Now()
	for !allSee(members, func(m *gossip.Membership) bool { return m.AliveMembers() == len(members)-1 }) {
		if time.Since(t0) > 2*time.Minute {
			return nil, fmt.Errorf("%d members did not converge within 2 minutes", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	converged := time.Since(t0)
	// Steady state: bytes sent and false positives over a window.
	window := 20 * time.Second
	sent0 := totalSent(members)
	time.Sleep(window)
	perMember := float64(totalSent(members)-sent0) / window.Seconds() / float64(len(members))
	var detections []time.Duration
	killed := map[string]bool{}
	names := make([]string, 0, len(members))
	for name := range members {
		names = append(names, name)
	}
	sort.Strings(names)
	rand.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	for _, victim := range names[:deaths] {
		r := members[victim]
		delete(members, victim)
		killed[victim] = true
		died := time.Now()
		r.cancel() // stops without a goodbye: a crash to the others
		<-r.done
		for !allSee(members, func(m *gossip.Membership) bool { mem, ok := m.Member(victim); return ok && mem.State == gossip.Dead }) {
			if time.Since(died) > time.Minute {
				return nil, fmt.Errorf("the death of %s was not known everywhere within a minute", victim)
			}
			time.Sleep(20 * time.Millisecond)
		}
		detections = append(detections, time.Since(died))
	}
	falsePositives := 0
	for _, r := range members {
		for _, mem := range r.m.Members() {
			if !killed[mem.Name] && mem.State != gossip.Alive {
				falsePositives++
			}
		}
	}
	slices.Sort(detections)
	label := fmt.Sprintf("gossip %d members", n)
	if loss > 0 {
		label += fmt.Sprintf(", %.0f%% packet loss", loss*100)
	}
	out := []result{
		{label + ": converged", fmt.Sprintf("%.1f s", converged.Seconds()), ""},
		{label + fmt.Sprintf(": death known everywhere, p50 / max of %d", deaths), fmt.Sprintf("%s / %s", ms(detections[len(detections)/2]), ms(detections[len(detections)-1])), "seconds"},
		{label + ": live members seen not alive at the end", fmt.Sprint(falsePositives), "0"},
	}
	if loss == 0 { // the lossy transport does not count
		out = append(out, result{label + ": bytes sent per member", fmt.Sprintf("%.0f B/s", perMember), ""})
	}
	return out, nil
}

// benchMember is one running member.
type benchMember struct {
	m      *gossip.Membership
	cancel context.CancelFunc
	done   chan struct{}
}

// allSee reports whether cond holds for every member.
func allSee(members map[string]*benchMember, cond func(*gossip.Membership) bool) bool {
	for _, r := range members {
		if !cond(r.m) {
			return false
		}
	}
	return true
}

func totalSent(members map[string]*benchMember) uint64 {
	var n uint64
	for _, r := range members {
		n += r.m.SentBytes()
	}
	return n
}

func encodeKey(k []byte) string { return base64.StdEncoding.EncodeToString(k) }

// lossyTransport drops a share of the UDP packets it is asked to send.
type lossyTransport struct {
	*memberlist.NetTransport
	loss float64
}

func (t *lossyTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if rand.Float64() < t.loss {
		return time.Now(), nil
	}
	return t.NetTransport.WriteTo(b, addr)
}

func (t *lossyTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return t.WriteTo(b, a.Addr)
}
