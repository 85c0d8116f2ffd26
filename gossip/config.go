package gossip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/go-sockaddr"
	"github.com/hashicorp/memberlist"
)

// DefaultPort is memberlist's (and Serf's) port.
const DefaultPort = 7946

// ControlPlanePrefix starts the member name of a control plane process:
// "control-plane/HOST". A Node name cannot hold a '/', so no node takes it.
const ControlPlanePrefix = "control-plane/"

// Roles a member announces in its metadata.
const (
	RoleNode         = "node"
	RoleControlPlane = "control-plane"
)

// Config configures one member.
type Config struct {
	// Name is the member's name: the Node's name, or ControlPlanePrefix+host.
	Name string
	// Role is RoleNode or RoleControlPlane.
	Role string
	// PublicKey is the member's Ed25519 public key (base64), announced in
	// its metadata so the control plane can check it against the Node.
	PublicKey string
	// Bind is host:port to listen on, UDP and TCP (--gossip-bind); port 0
	// picks a free one.
	Bind string
	// Advertise is the host:port others reach this member at
	// (--gossip-advertise); empty is the bind address, or with an
	// unspecified bind host the address memberlist picks.
	Advertise string
	// AdvertiseIP is advertised with the bound port when Advertise is
	// empty and Bind's host is unspecified (an agent's node address);
	// empty leaves the choice to memberlist (a private address).
	AdvertiseIP string
	// Keyring holds the AES-256 keys. Required: gossip is never plain.
	Keyring *Keyring
	// Seeds returns addresses to join (and to rejoin after a partition).
	// It is called again whenever this member sees no other alive member,
	// and every RejoinInterval for seeds it does not know alive.
	Seeds func(ctx context.Context) ([]string, error)
	// Timing sets the failure detector.
	Timing Timing
	// LeaveOnStop makes Run say goodbye when ctx ends (others then see
	// the member "left" at once); otherwise a stop looks like a failure
	// and a quick restart refutes it, which is what an agent wants.
	LeaveOnStop bool
	// Transport replaces the UDP/TCP transport (tests).
	Transport memberlist.NodeAwareTransport
}

// Timing is the failure detector's settings. See DefaultTiming for the
// reasoning.
type Timing struct {
	// ProbeInterval is how often a member probes one other member.
	ProbeInterval time.Duration
	// ProbeTimeout is how long a direct probe waits for an ack before
	// asking others to probe indirectly.
	ProbeTimeout time.Duration
	// SuspicionMult scales the suspicion timeout: a suspect is declared
	// dead after SuspicionMult * max(1, log10(members)) * ProbeInterval
	// unless it refutes.
	SuspicionMult int
	// SuspicionMaxTimeoutMult bounds Lifeguard's stretched timeout (when
	// too few members confirm the suspicion).
	SuspicionMaxTimeoutMult int
	// GossipInterval is how often a member gossips queued messages.
	GossipInterval time.Duration
	// PushPullInterval is how often two members exchange full state.
	PushPullInterval time.Duration
	// RejoinInterval is how often seeds that are not alive members are
	// tried again (what heals a partition after both sides gave up on the
	// other).
	RejoinInterval time.Duration
}

// DefaultTiming is tuned for seconds-fast death detection on a LAN that
// still survives an agent restart:
//
//   - A dead member is probed by someone within about one ProbeInterval
//     (every member probes one other each second, in random order), the
//     probe fails after ProbeTimeout, indirect probes through 3 others
//     fail by the end of that interval, and the member is suspect.
//   - The suspect is dead SuspicionMult (3) * max(1, log10 n) seconds
//     later: 3 s below 10 members, 6 s at 100, 9 s at 1,000. memberlist
//     starts the timer at SuspicionMaxTimeoutMult (2) times that and
//     shrinks it as SuspicionMult-2 others confirm (Lifeguard); in
//     clusters too small for that many confirmations it uses the minimum
//     at once. With 4 the unconfirmed case took up to 14 s in the
//     benchmark; 2 bounds it at 6 s below 10 members.
//     Lifeguard's awareness also stretches a member's own probe timeouts
//     while it is slow itself (a starved CPU), so a slow member suspects
//     less rather than more.
//   - So a death is declared about 4-5 s after it happens, and an agent
//     that restarts (kill -9, systemd's Restart=always, a join that takes
//     well under a second) refutes the suspicion with a higher incarnation
//     before its timer runs out: it needs to be back within about 3 s.
func DefaultTiming() Timing {
	return Timing{
		ProbeInterval:           time.Second,
		ProbeTimeout:            500 * time.Millisecond,
		SuspicionMult:           3,
		SuspicionMaxTimeoutMult: 2,
		GossipInterval:          200 * time.Millisecond,
		PushPullInterval:        30 * time.Second,
		RejoinInterval:          5 * time.Second,
	}
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	switch {
	case c.Name == "":
		return errors.New("gossip: a member name is required")
	case c.Keyring == nil:
		return errors.New("gossip: a keyring is required (gossip is always encrypted)")
	case c.Role != RoleNode && c.Role != RoleControlPlane:
		return fmt.Errorf("gossip: role %q: want %s or %s", c.Role, RoleNode, RoleControlPlane)
	}
	if _, _, err := splitHostPort(c.Bind); err != nil {
		return fmt.Errorf("--gossip-bind %q: %w", c.Bind, err)
	}
	if c.Advertise != "" {
		if host, _, err := splitHostPort(c.Advertise); err != nil || net.ParseIP(host) == nil {
			return fmt.Errorf("--gossip-advertise %q: want IP:port", c.Advertise)
		}
	}
	t := c.Timing
	if t.ProbeInterval <= 0 || t.ProbeTimeout <= 0 || t.ProbeTimeout >= t.ProbeInterval || t.SuspicionMult < 1 ||
		t.SuspicionMaxTimeoutMult < 1 || t.GossipInterval <= 0 || t.PushPullInterval <= 0 || t.RejoinInterval <= 0 {
		return fmt.Errorf("gossip: timing %+v: every interval must be positive and the probe timeout below the probe interval", t)
	}
	return nil
}

// splitHostPort parses host:port with a numeric port.
func splitHostPort(s string) (string, int, error) {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q: want 0-65535", p)
	}
	return host, port, nil
}

// memberlistConfig turns c into memberlist's configuration.
func (c *Config) memberlistConfig() (*memberlist.Config, error) {
	mc := memberlist.DefaultLANConfig()
	mc.Name = c.Name
	host, port, err := splitHostPort(c.Bind)
	if err != nil {
		return nil, err
	}
	if host == "" {
		host = "0.0.0.0"
	}
	mc.BindAddr, mc.BindPort = host, port
	mc.AdvertisePort = port
	if c.Advertise != "" {
		ahost, aport, _ := splitHostPort(c.Advertise)
		mc.AdvertiseAddr, mc.AdvertisePort = ahost, aport
	} else if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		mc.AdvertiseAddr = host
	} else if c.AdvertiseIP != "" {
		mc.AdvertiseAddr = c.AdvertiseIP
	}
	t := c.Timing
	mc.ProbeInterval, mc.ProbeTimeout = t.ProbeInterval, t.ProbeTimeout
	mc.SuspicionMult, mc.SuspicionMaxTimeoutMult = t.SuspicionMult, t.SuspicionMaxTimeoutMult
	mc.GossipInterval, mc.PushPullInterval = t.GossipInterval, t.PushPullInterval
	mc.Keyring = c.Keyring.ring
	mc.SecretKey = nil // the keyring carries the keys
	mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	mc.TCPTimeout = 2 * time.Second // push/pull and joins on a LAN; a dead seed must not hold a rejoin for long
	return mc, nil
}

// LocalIP is an address of this machine to advertise when bound to all
// interfaces: the first private IPv4 address, else the first global
// IPv4 one, else memberlist's own choice, else loopback. IPv4 first: a
// private IPv6 address (fd00::/8) is what memberlist would pick, and
// peers with only IPv4 could not reach it.
func LocalIP() string {
	addrs, _ := net.InterfaceAddrs()
	var global string
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok || n.IP.To4() == nil || !n.IP.IsGlobalUnicast() {
			continue
		}
		if n.IP.IsPrivate() {
			return n.IP.String()
		}
		if global == "" {
			global = n.IP.String()
		}
	}
	if global != "" {
		return global
	}
	if ip, err := sockaddr.GetPrivateIP(); err == nil && ip != "" {
		return ip
	}
	return "127.0.0.1"
}
