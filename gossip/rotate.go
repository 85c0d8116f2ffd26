package gossip

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
	"k8s.io/klog/v2"
)

// Rotate makes key the cluster's gossip key: it installs it on every
// member, then makes it the primary everywhere, then removes the old
// keys. Each step waits until every member this one sees alive announces
// it in its metadata (resending to those that do not), so at no moment
// can one member not decrypt another: nobody flaps. A member that is away
// during a rotation takes the new keys from the API server when it comes
// back. step bounds each step; the keyring file is written at each step.
func (m *Membership) Rotate(ctx context.Context, key []byte, step time.Duration) error {
	if len(key) != KeySize {
		return fmt.Errorf("gossip key: %d bytes, want %d", len(key), KeySize)
	}
	fp := Fingerprint(key)
	old := m.keyring.ordered()
	steps := []rotationStep{
		{opInstall, key, func(mt Meta) bool { return slices.Contains(mt.Keys, fp) }},
		{opUse, key, func(mt Meta) bool { return mt.Primary == fp }},
	}
	for _, k := range old {
		if !slices.Equal(k, key) {
			ofp := Fingerprint(k)
			steps = append(steps, rotationStep{opRemove, k, func(mt Meta) bool { return !slices.Contains(mt.Keys, ofp) }})
		}
	}
	for _, s := range steps {
		op := keyOp{Op: s.op, Key: base64.StdEncoding.EncodeToString(s.key)}
		if err := m.keyring.apply(op); err != nil {
			return err
		}
		m.announce()
		if err := m.everywhere(ctx, op, s.done, step); err != nil {
			return err
		}
	}
	return nil
}

// rotationStep is one key operation and how a member's metadata shows
// it is done.
type rotationStep struct {
	op   string
	key  []byte
	done func(Meta) bool
}

// everywhere sends op to every alive member until each announces done,
// or step passes.
func (m *Membership) everywhere(ctx context.Context, op keyOp, done func(Meta) bool, step time.Duration) error {
	body, err := json.Marshal(op)
	if err != nil {
		return err
	}
	msg := append([]byte{msgKeyOp}, body...)
	ctx, cancel := context.WithTimeout(ctx, step)
	defer cancel()
	for {
		var behind []string
		// From this member's own view: memberlist's Members() shares
		// nodes that its handlers go on writing.
		for _, mem := range m.Members() {
			if mem.State != Alive {
				continue // suspect or gone: it catches up from the API server if it comes back
			}
			if done(mem.Meta) {
				continue
			}
			behind = append(behind, mem.Name)
			if err := m.sendReliable(mem, msg); err != nil {
				klog.V(2).InfoS("gossip: send key operation", "op", op.Op, "member", mem.Name, "err", err)
			}
		}
		if len(behind) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			sort.Strings(behind)
			return fmt.Errorf("gossip key %s: %s did not confirm within %s", op.Op, strings.Join(behind, ", "), step)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// sendReliable sends msg to mem over TCP.
func (m *Membership) sendReliable(mem Member, msg []byte) error {
	host, port, err := splitHostPort(mem.Addr)
	if err != nil {
		return fmt.Errorf("member %q address %q: %w", mem.Name, mem.Addr, err)
	}
	return m.ml.SendReliable(&memberlist.Node{Name: mem.Name, Addr: net.ParseIP(host), Port: uint16(port)}, msg)
}
