package nodeagent

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/identity"
	"skiff.dev/skiff/internal/failover"
)

// The node's identity in its data directory: its key, and its client
// certificate (a year long, renewed by the agent).
const (
	keyFile  = "node.key"
	certFile = "node.crt"
)

// readJoinToken accepts the token itself or the path of a file holding it.
func readJoinToken(s string) (identity.JoinToken, error) {
	return identity.ReadJoinToken("--join-token", s)
}

// firstServerCertificate fetches the API server's certificate from the
// first of servers that answers, trying each once from the current one;
// a server that does not is left for the next. The servers share one
// certificate.
func firstServerCertificate(ctx context.Context, servers *failover.Servers, tok identity.JoinToken) ([]byte, error) {
	var errs []error
	for range servers.List() {
		server := servers.Current()
		ca, err := serverCertificate(ctx, server, tok)
		if err == nil {
			return ca, nil
		}
		errs = append(errs, err)
		servers.Failed(server)
	}
	return nil, errors.Join(errs...)
}

// serverCertificate fetches the apiserver's certificate, accepting it only
// if it is the one the join token pins.
func serverCertificate(ctx context.Context, server string, tok identity.JoinToken) ([]byte, error) {
	u, err := url.Parse(server)
	if err != nil {
		return nil, err
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "443")
	}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: failover.DialTimeout}, Config: &tls.Config{
		InsecureSkipVerify:    true, // the pin below is the whole check
		VerifyPeerCertificate: tok.VerifyPinned,
	}}
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, fmt.Errorf("server %s: %w", server, err)
	}
	defer conn.Close()
	leaf := conn.(*tls.Conn).ConnectionState().PeerCertificates[0]
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}), nil
}

// joinOptions tune joins for a fleet of simulated nodes.
type joinOptions struct {
	// mapper, when not nil, is shared by the clients (a fleet would
	// otherwise run discovery once per node).
	mapper meta.RESTMapper
	// http1 makes the node's connection HTTP/1.1: a node of a fleet sends
	// a request every few seconds, and an HTTP/2 connection holds several
	// times the buffers.
	http1 bool
	// servers, when not nil, are the API servers, shared by the clients
	// (a fleet keeps one list for every node); else join makes them from
	// --server and the list kept in the data dir.
	servers *failover.Servers
	// timeout, when not 0, bounds each request of the join (discovery
	// too, which takes no context) and, after it, each of the node's own
	// client's (its Lease, its status, the sources of its Instances). The
	// manager's watches use another client, without one.
	timeout time.Duration
}

// joined is the outcome of a join: the node's identity and clients.
type joined struct {
	id *identity.Identity
	// cert is the node's certificate, as a client and as the agent's
	// server; Run renews it.
	cert   identity.CertFile
	config *rest.Config
	client client.Client
	// http is the client's connection, for other clients of this node.
	http *http.Client
	// servers are the API servers config's clients fail over among.
	servers *failover.Servers
	// apiserverKey is the key of the API server's client identity towards
	// agents: the only caller of logs and metrics.
	apiserverKey ed25519.PublicKey
}

// joinAttempt bounds one attempt to join, and each request of it. A join
// takes well under a second; unbounded, a server that accepts a
// connection and never answers would hold the agent, silent, for as long
// as the connection lasts.
const joinAttempt = 30 * time.Second

// joinPatiently joins, trying again each time an attempt runs out of
// time; any other failure (a refused token, a Node with another key, no
// server reachable) ends it, as before.
func joinPatiently(ctx context.Context, cfg Config, scheme *runtime.Scheme, opts joinOptions, attempt time.Duration) (*joined, error) {
	opts.timeout = attempt
	for {
		actx, cancel := context.WithTimeout(ctx, attempt)
		j, err := join(actx, cfg, scheme, opts)
		timedOut := actx.Err() != nil
		cancel()
		if err == nil || !timedOut || ctx.Err() != nil {
			return j, err
		}
		klog.ErrorS(err, "no answer to the join within an attempt; trying again", "node", cfg.NodeName, "attempt", attempt)
	}
}

// join registers the Node once with the join token and returns a client
// that authenticates as the node.
func join(ctx context.Context, cfg Config, scheme *runtime.Scheme, opts joinOptions) (*joined, error) {
	mapper := opts.mapper
	tok, err := readJoinToken(cfg.JoinToken)
	if err != nil {
		return nil, err
	}
	id, _, err := identity.LoadOrCreate(filepath.Join(cfg.DataDir, keyFile))
	if err != nil {
		return nil, err
	}
	cert := identity.CertFile{ID: id, CommonName: skiffv1alpha1.NodeUserPrefix + cfg.NodeName, Path: filepath.Join(cfg.DataDir, certFile)}
	if _, err := cert.Ensure(time.Now(), false); err != nil {
		return nil, err
	}
	servers := opts.servers
	if servers == nil {
		if servers, err = knownServers(cfg); err != nil {
			return nil, err
		}
	}
	ca, err := firstServerCertificate(ctx, servers, tok)
	if err != nil {
		return nil, err
	}
	nodeCfg := &rest.Config{
		// Files, not data: client-go re-reads them, so a renewed
		// certificate is used without a restart.
		TLSClientConfig: rest.TLSClientConfig{CAData: ca, CertFile: cert.Path, KeyFile: filepath.Join(cfg.DataDir, keyFile)},
		QPS:             50, Burst: 100,
		UserAgent: "skiff-agent/" + cfg.NodeName,
	}
	if opts.http1 {
		nodeCfg.TLSClientConfig.NextProtos = []string{"http/1.1"}
	}
	servers.Apply(nodeCfg)
	nodeHTTP, err := rest.HTTPClientFor(nodeCfg)
	if err != nil {
		return nil, err
	}
	nodeClient, err := client.New(nodeCfg, client.Options{Scheme: scheme, Mapper: mapper, HTTPClient: withTimeout(nodeHTTP, opts.timeout)})
	if err != nil {
		return nil, err
	}
	var node skiffv1alpha1.Node
	err = nodeClient.Get(ctx, client.ObjectKey{Name: cfg.NodeName}, &node)
	switch {
	case err == nil && node.Spec.PublicKey == id.PublicKeyString():
		// Registered before: the key is all we need.
	case err == nil:
		return nil, fmt.Errorf("node %q is registered with another key", cfg.NodeName)
	case apierrors.IsUnauthorized(err):
		if err := register(ctx, cfg, servers, tok, ca, id, scheme, mapper, opts.timeout); err != nil {
			return nil, err
		}
		if err := waitTrusted(ctx, nodeClient, cfg.NodeName); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("node %q: %w", cfg.NodeName, err)
	}
	apiserverKey, err := apiserverClientKey(ctx, nodeHTTP, servers.Current())
	if err != nil {
		return nil, err
	}
	return &joined{id: id, cert: cert, config: nodeCfg, client: nodeClient, http: nodeHTTP, servers: servers, apiserverKey: apiserverKey}, nil
}

// withTimeout is c bounding each request to timeout (0: c itself), over
// c's connections.
func withTimeout(c *http.Client, timeout time.Duration) *http.Client {
	if timeout == 0 {
		return c
	}
	bounded := *c
	bounded.Timeout = timeout
	return &bounded
}

// apiserverClientKey asks the API server for the key it reaches agents
// with (logs, metrics). The answer comes over the connection that pins the
// server's certificate, so it needs no other check.
func apiserverClientKey(ctx context.Context, c *http.Client, server string) (ed25519.PublicKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(server, "/")+skiffv1alpha1.APIServerClientKeyPath, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("the API server's client key: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return nil, fmt.Errorf("the API server's client key: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the API server's client key: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	key, err := identity.ParsePublicKey(strings.TrimSpace(string(body)))
	if err != nil {
		return nil, fmt.Errorf("the API server's client key: %w", err)
	}
	return key, nil
}

// bootstrapConfig authenticates with the join token.
func bootstrapConfig(server string, tok identity.JoinToken, ca []byte) *rest.Config {
	return &rest.Config{Host: server, BearerToken: tok.String(), TLSClientConfig: rest.TLSClientConfig{CAData: ca}}
}

// register creates the Node with the agent's key, or sets the key of a
// Node that has none, authenticating with the join token.
func register(ctx context.Context, cfg Config, servers *failover.Servers, tok identity.JoinToken, ca []byte, id *identity.Identity, scheme *runtime.Scheme, mapper meta.RESTMapper, timeout time.Duration) error {
	bootCfg := bootstrapConfig(servers.Current(), tok, ca)
	bootCfg.Timeout = timeout
	servers.Apply(bootCfg)
	bootHTTP, err := rest.HTTPClientFor(bootCfg)
	if err != nil {
		return err
	}
	defer bootHTTP.CloseIdleConnections() // used once
	boot, err := client.New(bootCfg, client.Options{Scheme: scheme, Mapper: mapper, HTTPClient: bootHTTP})
	if err != nil {
		return err
	}
	// Create, or claim a Node an admin made keyless: the join token may
	// read no Node, so it does not look first.
	node := skiffv1alpha1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: cfg.NodeName, Labels: nodeLabels(cfg)},
		Spec:       skiffv1alpha1.NodeSpec{PublicKey: id.PublicKeyString(), Taints: cfg.Taints},
	}
	err = boot.Create(ctx, &node)
	if apierrors.IsAlreadyExists(err) {
		claim := fmt.Sprintf(`{"spec":{"publicKey":%q}}`, id.PublicKeyString())
		existing := &skiffv1alpha1.Node{ObjectMeta: metav1.ObjectMeta{Name: cfg.NodeName}}
		err = boot.Patch(ctx, existing, client.RawPatch(types.MergePatchType, []byte(claim)))
		if apierrors.IsInvalid(err) { // spec.publicKey is set, and immutable
			return fmt.Errorf("node %q is registered with another key; delete the Node to register this agent: %w", cfg.NodeName, err)
		}
	}
	switch {
	case err == nil:
		return nil
	case apierrors.IsUnauthorized(err):
		return errors.New("the server refused the join token: check --join-token against the server's <data-dir>/join-token")
	}
	return fmt.Errorf("register node %q: %w", cfg.NodeName, err)
}

// waitTrusted waits until the apiserver trusts the new key (it learns
// keys by watching Nodes, so this takes milliseconds).
func waitTrusted(ctx context.Context, c client.Client, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		err := c.Get(ctx, client.ObjectKey{Name: name}, &skiffv1alpha1.Node{})
		if err == nil {
			return nil
		}
		if !apierrors.IsUnauthorized(err) {
			return fmt.Errorf("node %q: %w", name, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %q: the server did not start trusting the agent's key: %w", name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
