package apiserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"skiff.dev/skiff/identity"
)

// joinTimeout bounds a join: etcd takes one learner at a time, so a
// server joining beside another waits for it.
const joinTimeout = 3 * time.Minute

// prepareMembership readies dir's etcd for how it runs: a server's own
// (no flags), the first of a cluster (--cluster-init), or another joining
// one (--join: the first start asks the server joined for its keys and an
// etcd membership). A server that is a member already stays one; the
// flags for becoming one are then ignored.
func prepareMembership(ctx context.Context, cfg Config, dir dataDir) (*etcdMember, error) {
	etcdDir := dir.file("etcd")
	m, err := loadEtcdMember(etcdDir)
	if err != nil {
		return nil, err
	}
	if m == nil && !cfg.ClusterInit && cfg.Join == "" {
		return nil, nil
	}
	if m != nil {
		return keepMembership(cfg, etcdDir, m)
	}
	advertise, err := cfg.advertiseIP()
	if err != nil {
		return nil, err
	}
	peer := peerURL(advertise, cfg.EtcdPeerPort)
	switch {
	case cfg.Join != "":
		if etcdDataExists(etcdDir) {
			return nil, fmt.Errorf("--join: %s already holds an etcd of its own: a server joins with a data directory without one (move %s aside)", etcdDir, etcdDir)
		}
		ctx, cancel := context.WithTimeout(ctx, joinTimeout)
		defer cancel()
		resp, err := requestJoin(ctx, cfg, JoinRequest{Name: cfg.Name, PeerURL: peer})
		if err != nil {
			return nil, err
		}
		if err := writeJoinFiles(cfg, dir, resp); err != nil {
			return nil, err
		}
		m = &etcdMember{Name: cfg.Name, PeerURL: peer, InitialCluster: resp.InitialCluster, Existing: true}
	default: // --cluster-init
		if err := os.MkdirAll(etcdDir, 0o700); err != nil {
			return nil, fmt.Errorf("etcd dir %q: %w", etcdDir, err)
		}
		if err := ensurePeerCA(etcdDir); err != nil {
			return nil, err
		}
		token, err := newClusterToken()
		if err != nil {
			return nil, err
		}
		m = &etcdMember{Name: cfg.Name, PeerURL: peer, InitialCluster: cfg.Name + "=" + peer, ClusterToken: token}
	}
	return m, m.save(etcdDir)
}

// keepMembership is a member's restart: it keeps its name and its peer
// URL, but for the parts --advertise-address and --etcd-peer-port (when
// not the default) say anew.
func keepMembership(cfg Config, etcdDir string, m *etcdMember) (*etcdMember, error) {
	if m.Name != cfg.Name {
		// etcd knows the member by its first name.
		return nil, fmt.Errorf("--node-name %q: this server is member %q of its cluster; start it with --node-name %s", cfg.Name, m.Name, m.Name)
	}
	u, err := url.Parse(m.PeerURL)
	if err != nil {
		return nil, fmt.Errorf("etcd member file: peer URL %q: %w", m.PeerURL, err)
	}
	host, port := u.Hostname(), u.Port()
	if cfg.AdvertiseAddress != "" {
		host = cfg.AdvertiseAddress
	}
	if cfg.EtcdPeerPort != DefaultEtcdPeerPort {
		port = strconv.Itoa(cfg.EtcdPeerPort)
	}
	if peer := "https://" + net.JoinHostPort(host, port); peer != m.PeerURL {
		m.PeerURL = peer
		if err := m.save(etcdDir); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// requestJoin POSTs the join to cfg.Join, trusting only the certificate
// the server token pins, and retries while the cluster cannot take a
// learner yet.
func requestJoin(ctx context.Context, cfg Config, req JoinRequest) (*JoinResponse, error) {
	tok, err := readServerToken(cfg.JoinToken)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify:    true, // the pin is the whole check
		VerifyPeerCertificate: tok.VerifyPinned,
	}}}
	defer client.CloseIdleConnections()
	url := strings.TrimSuffix(cfg.Join, "/") + ClusterJoinPath
	for {
		resp, retry, err := postJoin(ctx, client, url, tok.String(), body)
		if err == nil {
			return resp, nil
		}
		if !retry {
			return nil, fmt.Errorf("--join %s: %w", cfg.Join, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("--join %s: %w (gave up: %v)", cfg.Join, err, ctx.Err())
		case <-time.After(2 * time.Second):
		}
	}
}

// postJoin makes one attempt; retry says whether another may succeed.
func postJoin(ctx context.Context, client *http.Client, url, token string, body []byte) (*JoinResponse, bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, false, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		// A certificate other than the pinned one will not change.
		return nil, !strings.Contains(err.Error(), "does not match the join token"), err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, true, err
	}
	msg := strings.TrimSpace(string(data))
	var status metav1.Status
	if json.Unmarshal(data, &status) == nil && status.Message != "" {
		msg = status.Message
	}
	switch resp.StatusCode {
	case http.StatusOK:
		var out JoinResponse
		if err := json.Unmarshal(data, &out); err != nil {
			return nil, false, fmt.Errorf("join response: %w", err)
		}
		return &out, false, nil
	case http.StatusServiceUnavailable, http.StatusTooManyRequests, http.StatusInternalServerError:
		return nil, true, fmt.Errorf("%s: %s", resp.Status, msg)
	default:
		return nil, false, fmt.Errorf("%s: %s", resp.Status, msg)
	}
}

// readServerToken accepts the token itself or the path of a file holding it.
func readServerToken(s string) (identity.JoinToken, error) {
	return identity.ReadJoinToken("--token", s)
}

// writeJoinFiles writes the cluster's shared files into dir: only those
// sharedFiles names, and the encryption configuration where this server
// keeps it.
func writeJoinFiles(cfg Config, dir dataDir, resp *JoinResponse) error {
	// Checked whole before anything is written.
	for name := range resp.Files {
		if !slices.Contains(sharedFiles, name) {
			return fmt.Errorf("join response: %q is not a file servers share", name)
		}
	}
	if _, ok := resp.Files["etcd/"+peerCACertFile]; !ok {
		return errors.New("join response: no etcd peer CA (is the server joined a --cluster-init one?)")
	}
	if len(resp.EncryptionConfig) == 0 {
		return errors.New("join response: no encryption configuration")
	}
	if err := os.MkdirAll(dir.file("etcd"), 0o700); err != nil {
		return err
	}
	for name, data := range resp.Files {
		mode := os.FileMode(0o600)
		if name == servingCertFile {
			mode = 0o644
		}
		if err := identity.WriteFileAtomic(dir.file(filepath.FromSlash(name)), data, mode); err != nil {
			return fmt.Errorf("join: %s: %w", name, err)
		}
	}
	path := cfg.encryptionConfigPath()
	if err := identity.WriteFileAtomic(path, resp.EncryptionConfig, 0o600); err != nil {
		return fmt.Errorf("join: encryption configuration %s: %w", path, err)
	}
	return nil
}

// advertiseIP is the address other servers reach this one's etcd at.
func (c *Config) advertiseIP() (string, error) {
	if c.AdvertiseAddress != "" {
		return c.AdvertiseAddress, nil
	}
	host, _, _ := net.SplitHostPort(c.Listen)
	ip := net.ParseIP(host)
	if ip == nil || ip.IsUnspecified() {
		return "", fmt.Errorf("--advertise-address: needed with --cluster-init or --join when --listen %q names no single address", c.Listen)
	}
	return ip.String(), nil
}
