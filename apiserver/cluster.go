package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/klog/v2"
)

// The cluster of servers' endpoints, an admin's (GET ClusterMembersPath
// lists the members, DELETE ClusterMembersPath/NAME removes one); a
// server token reaches ClusterJoinPath and nothing else.
const (
	ClusterPath        = "/skiff/cluster"
	ClusterMembersPath = ClusterPath + "/members"
	ClusterJoinPath    = ClusterPath + "/join"
)

// The user a server token authenticates as: it may POST ClusterJoinPath.
const (
	ServerJoinerUser  = "skiff:server-joiner"
	ServerJoinerGroup = "skiff:server-joiners"
)

// sharedFiles are the data directory's files every server of a cluster
// holds the same, handed to a server when it joins: one serving
// certificate (the one node join tokens pin), the API server's key
// towards agents, the admin's and the MCP bridge's identities, the node
// join token, the gossip keys, the audit policy, and the etcd peer CA.
// (The encryption configuration goes too, to wherever the joining server
// keeps it.)
var sharedFiles = []string{
	servingCertFile, servingKeyFile,
	agentClientCertFile, agentClientKeyFile,
	adminCertFile, adminKeyFile,
	mcpCertFile, mcpKeyFile,
	JoinTokenFile, initialTokenRecorded,
	"gossip.keyring",
	auditPolicyFile,
	"etcd/" + peerCACertFile, "etcd/" + peerCAKeyFile,
}

// JoinRequest is what a joining server POSTs to ClusterJoinPath.
type JoinRequest struct {
	// Name is the server's name, unique in the cluster.
	Name string `json:"name"`
	// PeerURL is where the other servers' etcd reaches its etcd.
	PeerURL string `json:"peerURL"`
}

// JoinResponse is what it gets back: how to start its etcd, and the
// cluster's shared files.
type JoinResponse struct {
	// InitialCluster is etcd's name=peerURL list, the new member included.
	InitialCluster string `json:"initialCluster"`
	// Files are sharedFiles by path in the data directory.
	Files map[string][]byte `json:"files"`
	// EncryptionConfig is the encryption configuration of Secrets.
	EncryptionConfig []byte `json:"encryptionConfig"`
}

// Member is a server of the cluster, as GET ClusterMembersPath lists it.
type Member struct {
	Name    string `json:"name"`
	ID      string `json:"id"`
	PeerURL string `json:"peerURL"`
	// Learner: added, not yet a voter (it is catching up).
	Learner bool `json:"learner,omitempty"`
	// Leader is etcd's leader.
	Leader bool `json:"leader,omitempty"`
	// Started is false for a member added whose server has not yet
	// started its etcd.
	Started bool `json:"started"`
}

// cluster serves the cluster endpoints and promotes learners; its etcd is
// set once the embedded etcd runs.
type cluster struct {
	dir              dataDir
	encryptionConfig string
	etcd             atomic.Pointer[embeddedEtcd]
}

func (c *cluster) client() (*clientv3.Client, *embeddedEtcd, error) {
	e := c.etcd.Load()
	if e == nil || e.member == nil {
		return nil, nil, errNotClustered
	}
	return e.client(), e, nil
}

var errNotClustered = errors.New("this server's etcd is its own, not a cluster's: start the first server with --cluster-init")

// ServeHTTP routes ClusterPath's requests (authorization already said who
// may make them).
func (c *cluster) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == ClusterJoinPath && r.Method == http.MethodPost:
		c.join(w, r)
	case r.URL.Path == ClusterMembersPath && r.Method == http.MethodGet:
		c.list(w, r)
	case strings.HasPrefix(r.URL.Path, ClusterMembersPath+"/") && r.Method == http.MethodDelete:
		name := strings.TrimPrefix(r.URL.Path, ClusterMembersPath+"/")
		if name == "" {
			clusterError(w, "DELETE "+ClusterMembersPath+"/NAME: which server?", http.StatusBadRequest)
			return
		}
		c.remove(w, r, name)
	default:
		clusterError(w, "not found: the cluster endpoints are POST "+ClusterJoinPath+", GET "+ClusterMembersPath+
			" and DELETE "+ClusterMembersPath+"/NAME", http.StatusNotFound)
	}
}

func (c *cluster) join(w http.ResponseWriter, r *http.Request) {
	var req JoinRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil {
		clusterError(w, "join request: "+err.Error(), http.StatusBadRequest)
		return
	}
	if err := validateJoinRequest(req); err != nil {
		clusterError(w, err.Error(), http.StatusBadRequest)
		return
	}
	cli, _, err := c.client()
	if err != nil {
		clusterError(w, err.Error(), http.StatusConflict)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	initial, status, err := addLearner(ctx, cli, req)
	if err != nil {
		clusterError(w, err.Error(), status)
		return
	}
	resp := JoinResponse{InitialCluster: initial, Files: map[string][]byte{}}
	for _, name := range sharedFiles {
		data, err := os.ReadFile(c.dir.file(filepath.FromSlash(name)))
		if errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			clusterError(w, err.Error(), http.StatusInternalServerError)
			return
		}
		resp.Files[name] = data
	}
	if resp.EncryptionConfig, err = os.ReadFile(c.encryptionConfig); err != nil {
		clusterError(w, fmt.Sprintf("encryption configuration: %v", err), http.StatusInternalServerError)
		return
	}
	klog.InfoS("a server joins the cluster", "name", req.Name, "peerURL", req.PeerURL)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

func validateJoinRequest(req JoinRequest) error {
	if errs := validation.IsDNS1123Subdomain(req.Name); len(errs) > 0 {
		return fmt.Errorf("name %q: %s", req.Name, strings.Join(errs, "; "))
	}
	bad := fmt.Errorf("peerURL %q: want https://IP:PORT, a unicast address and a port 1-65535", req.PeerURL)
	u, err := url.Parse(req.PeerURL)
	if err != nil || u.Scheme != "https" || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return bad
	}
	ip := net.ParseIP(u.Hostname())
	port, err := strconv.Atoi(u.Port())
	if ip == nil || ip.IsUnspecified() || ip.IsMulticast() || err != nil || port < 1 || port > 65535 {
		return bad
	}
	return nil
}

// voters counts the voting members.
func voters(members []*etcdserverpb.Member) int {
	n := 0
	for _, m := range members {
		if !m.IsLearner {
			n++
		}
	}
	return n
}

// addLearner adds req's server as a learner, unless it was added already
// (a join retried), and returns the initial cluster its etcd starts with.
func addLearner(ctx context.Context, cli *clientv3.Client, req JoinRequest) (string, int, error) {
	list, err := cli.MemberList(ctx)
	if err != nil {
		return "", http.StatusServiceUnavailable, fmt.Errorf("etcd members: %w", err)
	}
	added := false
	for _, m := range list.Members {
		samePeer := len(m.PeerURLs) == 1 && m.PeerURLs[0] == req.PeerURL
		switch {
		case m.Name == req.Name && !samePeer:
			return "", http.StatusConflict, fmt.Errorf("a server named %q is already a member (peer %s): remove it first (skiff server remove %s), or name this one otherwise (--node-name)",
				req.Name, strings.Join(m.PeerURLs, ","), req.Name)
		case samePeer && m.Name != "" && m.Name != req.Name:
			return "", http.StatusConflict, fmt.Errorf("peer URL %s is member %q's", req.PeerURL, m.Name)
		case samePeer && m.Name == req.Name && !m.IsLearner:
			return "", http.StatusConflict, fmt.Errorf("server %q is already a voting member: a server joins once; one that lost its data is removed (skiff server remove %s) and joins again", req.Name, req.Name)
		case samePeer:
			added = true // a retried join: the learner is there
		case m.IsLearner && m.Name == "":
			// etcd takes one learner at a time; this one never started.
			return "", http.StatusConflict, fmt.Errorf("server joining at %s was added and has not started yet: servers join one at a time; "+
				"if it never will, remove it first (skiff server remove %x)", strings.Join(m.PeerURLs, ","), m.ID)
		}
	}
	if !added {
		resp, err := cli.MemberAddAsLearner(ctx, []string{req.PeerURL})
		if err != nil {
			// etcd takes one learner at a time: the joiner retries.
			return "", http.StatusServiceUnavailable, fmt.Errorf("add %s to etcd as a learner: %w", req.Name, err)
		}
		list.Members = resp.Members
	}
	var pairs []string
	for _, m := range list.Members {
		name := m.Name
		if len(m.PeerURLs) == 1 && m.PeerURLs[0] == req.PeerURL {
			name = req.Name
		}
		if name == "" {
			continue // another member added but not started: it is not reachable yet
		}
		for _, u := range m.PeerURLs {
			pairs = append(pairs, name+"="+u)
		}
	}
	return strings.Join(pairs, ","), 0, nil
}

func (c *cluster) list(w http.ResponseWriter, r *http.Request) {
	cli, e, err := c.client()
	if err != nil {
		clusterError(w, err.Error(), http.StatusConflict)
		return
	}
	resp, err := cli.MemberList(r.Context())
	if err != nil {
		clusterError(w, fmt.Sprintf("etcd members: %v", err), http.StatusServiceUnavailable)
		return
	}
	leader := uint64(e.etcd.Server.Leader())
	members := make([]Member, 0, len(resp.Members))
	for _, m := range resp.Members {
		members = append(members, Member{
			Name: m.Name, ID: strconv.FormatUint(m.ID, 16), PeerURL: strings.Join(m.PeerURLs, ","),
			Learner: m.IsLearner, Leader: m.ID == leader, Started: m.Name != "",
		})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(members)
}

func (c *cluster) remove(w http.ResponseWriter, r *http.Request, name string) {
	cli, _, err := c.client()
	if err != nil {
		clusterError(w, err.Error(), http.StatusConflict)
		return
	}
	list, err := cli.MemberList(r.Context())
	if err != nil {
		clusterError(w, fmt.Sprintf("etcd members: %v", err), http.StatusServiceUnavailable)
		return
	}
	for _, m := range list.Members {
		// By name, or for a member added that never started (it has no
		// name yet) by its id.
		if m.Name != name && strconv.FormatUint(m.ID, 16) != name {
			continue
		}
		if !m.IsLearner && voters(list.Members) == 1 {
			clusterError(w, fmt.Sprintf("server %q is the cluster's only member that votes", name), http.StatusConflict)
			return
		}
		if err := removeMember(r.Context(), cli, m.ID); err != nil {
			clusterError(w, fmt.Sprintf("remove %q from etcd: %v", name, err), http.StatusServiceUnavailable)
			return
		}
		klog.InfoS("a server was removed from the cluster", "name", name)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	clusterError(w, fmt.Sprintf("no server named %q is a member", name), http.StatusNotFound)
}

// removeMember removes member id, retrying for a while what etcd refuses
// until the cluster looks healthy (a member that just stopped, a leader
// just elected: etcd's strict reconfiguration check).
func removeMember(ctx context.Context, cli *clientv3.Client, id uint64) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		_, err := cli.MemberRemove(ctx, id)
		if err == nil || !errors.Is(err, rpctypes.ErrGRPCUnhealthy) && !errors.Is(err, rpctypes.ErrUnhealthy) &&
			!strings.Contains(err.Error(), "unhealthy") && !strings.Contains(err.Error(), "not enough started members") {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Second):
		}
	}
}

// clusterError answers with a metav1.Status, which clients show as the
// message.
func clusterError(w http.ResponseWriter, msg string, code int) {
	reason := metav1.StatusReasonInternalError
	switch code {
	case http.StatusBadRequest:
		reason = metav1.StatusReasonBadRequest
	case http.StatusNotFound:
		reason = metav1.StatusReasonNotFound
	case http.StatusConflict:
		reason = metav1.StatusReasonConflict
	case http.StatusServiceUnavailable:
		reason = metav1.StatusReasonServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure, Message: msg, Reason: reason, Code: int32(code),
	})
}

// promoteLearners makes learners voters once they have caught up; only
// the leader acts. It runs until ctx ends.
func (c *cluster) promoteLearners(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		e := c.etcd.Load()
		if e == nil || e.member == nil || e.etcd.Server.Leader() != e.etcd.Server.MemberID() {
			continue
		}
		cli := e.client()
		list, err := cli.MemberList(ctx)
		if err == nil {
			for _, m := range list.Members {
				if !m.IsLearner || m.Name == "" {
					continue
				}
				// etcd refuses until the learner's log is close to the leader's.
				if _, err := cli.MemberPromote(ctx, m.ID); err == nil {
					klog.InfoS("a joining server caught up and votes now", "name", m.Name)
				}
			}
		}
	}
}

// waitPromoted waits until this member of the cluster votes: a learner
// serves no linearizable reads, so the API server cannot start on it.
func waitPromoted(ctx context.Context, e *embeddedEtcd, dir string) error {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for e.etcd.Server.IsLearner() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting to be promoted from etcd learner to voter: %w", ctx.Err())
		case <-e.Stopped():
			return stoppedOnItsOwn(dir)
		case <-t.C:
		}
	}
	return nil
}

// updatePeerURL makes the cluster's record of this member's peer URL the
// one it listens on (a server that became the first of a cluster, or got
// a new address).
func updatePeerURL(ctx context.Context, e *embeddedEtcd) error {
	if e.member == nil || e.etcd.Server.IsLearner() {
		return nil
	}
	cli := e.client()
	id := uint64(e.etcd.Server.MemberID())
	list, err := cli.MemberList(ctx)
	if err != nil {
		return fmt.Errorf("etcd members: %w", err)
	}
	for _, m := range list.Members {
		if m.ID == id && (len(m.PeerURLs) != 1 || m.PeerURLs[0] != e.member.PeerURL) {
			if _, err := cli.MemberUpdate(ctx, id, []string{e.member.PeerURL}); err != nil {
				return fmt.Errorf("etcd member %s: peer URL %s: %w", e.member.Name, e.member.PeerURL, err)
			}
		}
	}
	return nil
}
