package gossip

import (
	"encoding/json"
	"time"
)

// State is a member's state as this member sees it.
type State string

// Member states, as the GOSSIP column of `kubectl get nodes -o wide` shows them.
const (
	// Alive: it answers probes (directly or through others).
	Alive State = "alive"
	// Suspect: a probe by this member failed, directly and indirectly; it
	// is dead once memberlist's suspicion timer runs out unless it refutes.
	Suspect State = "suspect"
	// Dead: the suspicion ran out (the cluster agreed it failed).
	Dead State = "dead"
	// Left: it said goodbye before it stopped.
	Left State = "left"
)

// Member is one member as this member sees it.
type Member struct {
	Name string
	// Addr is its gossip address, ip:port.
	Addr string
	// State and Since, when this member saw the state begin.
	State State
	Since time.Time
	Meta
}

// Meta is what a member announces about itself (memberlist's node
// metadata, at most 512 bytes).
type Meta struct {
	// PublicKey is its Ed25519 public key (base64).
	PublicKey string `json:"pk,omitempty"`
	// Role is RoleNode or RoleControlPlane.
	Role string `json:"role,omitempty"`
	// Keys are the fingerprints of the gossip keys it holds, sorted, and
	// Primary the one it encrypts with.
	Keys    []string `json:"keys,omitempty"`
	Primary string   `json:"primary,omitempty"`
	// Leaving is set just before a member leaves, so that its end is
	// "left", not "dead".
	Leaving bool `json:"leaving,omitempty"`
}

// parseMeta reads a member's metadata; a member that announces something
// else has none.
func parseMeta(b []byte) Meta {
	var m Meta
	if len(b) > 0 {
		_ = json.Unmarshal(b, &m)
	}
	return m
}

// Ended reports whether the state is dead or left.
func (s State) Ended() bool { return s == Dead || s == Left }
