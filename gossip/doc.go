// Package gossip is skiff's membership: every agent and every control
// plane process is a member of one hashicorp/memberlist cluster, so that
// a node's death is heard in seconds (SWIM probes with Lifeguard's
// suspicion) and a node cut off from the control plane can be told apart
// from a dead one (its peers still reach it).
//
// A Membership wraps one memberlist member. Its name is the Node's name
// (control plane members are "control-plane/HOST", which no Node can be
// called); its metadata carries the node's Ed25519 public key, its role,
// and the fingerprints of the gossip keys it holds. Gossip is encrypted
// with AES-256 keys from a Keyring kept 0600 on disk: the server makes
// the first key, members receive the keys from the API server (Fetch,
// served by Handler), and Rotate installs a new key on every member,
// switches to it and removes the old one, checking each step in the
// members' metadata so that nobody is left unable to decrypt.
//
// Each member keeps its own view of every other member (Member): alive,
// suspect (its probe failed and memberlist's suspicion timer runs),
// dead, or left (it said goodbye), with the time of the change. A death
// heard from another member is believed only once a probe of this
// member's own goes unanswered (death.go): a member back from a
// partition spreads stale verdicts about healthy members. The
// control plane's node lifecycle controller reads that view; agents read
// LastContact to fence themselves when they reach no peer.
//
//	m, err := gossip.New(gossip.Config{Name: "n1", Bind: "0.0.0.0:7946", Keyring: kr, Seeds: seeds})
//	go m.Run(ctx)
//	st, ok := m.Member("n2")
package gossip
