package v1alpha1

// Names shared by the apiserver and the node agent.
const (
	// NodeLeaseNamespace holds one Lease per Node, named after it, renewed
	// by the node's agent.
	NodeLeaseNamespace = "skiff-node-lease"
	// AgentFinalizer holds each Instance bound to a node until the node's
	// agent has stopped and cleaned up its containers. The bind sets it
	// (an agent sets it on an Instance created with spec.nodeName); the
	// node lifecycle controller releases it where no agent will (a
	// deleted Node, or a lost node whose agent never accepted the
	// Instance).
	AgentFinalizer = "skiff.dev/agent"
	// NodeUserPrefix prefixes a node identity's user name: skiff:node:NAME.
	NodeUserPrefix = "skiff:node:"
	// NodesGroup is the group of every node identity.
	NodesGroup = "skiff:nodes"
	// BootstrapUser is who presents the join token.
	BootstrapUser = "skiff:bootstrap"
	// BootstrappersGroup is the group of the join token's user.
	BootstrappersGroup = "skiff:bootstrappers"
	// APIServerUser is the name in the API server's client certificate
	// towards agents (logs, metrics).
	APIServerUser = "skiff:apiserver"
	// APIServerClientKeyPath is where a node GETs the public key (base64,
	// as text) of the API server's client identity towards agents: an
	// agent serves logs and metrics only to that key.
	APIServerClientKeyPath = "/skiff/apiserver-client-key"
	// ServersPath is where any authenticated client GETs the API servers
	// of the cluster that are alive: JSON {"servers": ["https://IP:PORT",
	// ...]}, from the Leases each server renews (ServerLeaseLabel).
	ServersPath = "/skiff/servers"
	// ServerLeaseLabel marks the Lease (in skiff-system, named
	// "apiserver-<server name>") an API server renews while it serves; its
	// ServerURLAnnotation says where.
	ServerLeaseLabel = "skiff.dev/apiserver"
	// ServerURLAnnotation is an API server Lease's HTTPS URL.
	ServerURLAnnotation = "skiff.dev/url"
	// ServerGossipAnnotation is an API server Lease's gossip address
	// (ip:port): the servers of a cluster join each other's gossip there.
	ServerGossipAnnotation = "skiff.dev/gossip"
	// RevisionLabel carries the template revision an Instance was made from.
	RevisionLabel = "skiff.dev/revision"
	// TaintUnreachable is put on a Node, with effect NoExecute, while its
	// agent stops renewing its Lease but gossip does not say it is dead:
	// it may only be cut off from the control plane.
	TaintUnreachable = "node.skiff.dev/unreachable"
	// TaintDead is put on a Node, with effect NoExecute, when gossip says
	// it is dead (or left) and its Lease was not renewed since: Instances
	// that do not tolerate it are replaced at once.
	TaintDead = "node.skiff.dev/dead"
	// TaintNetworkUnavailable is put on a Node, with effect NoSchedule,
	// while the cluster CIDR has no subnet left for it: its Instances
	// could get no address. The node IPAM controller removes it with the
	// subnet it gives.
	TaintNetworkUnavailable = "node.skiff.dev/network-unavailable"
	// DefaultTolerationSeconds is how long an Instance stays on an
	// unreachable node unless it says otherwise: Kubernetes' 300 s, since
	// a node that gossip still reaches is only cut off from the control
	// plane, and a dead node is tainted dead (no default toleration).
	DefaultTolerationSeconds int64 = 300
)
