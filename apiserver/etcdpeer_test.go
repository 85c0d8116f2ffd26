package apiserver

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

func TestEnsurePeerCAIsIdempotent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etcd")
	if err := ensurePeerCA(dir); err != nil {
		t.Fatal(err)
	}
	cert, key := mustRead(t, filepath.Join(dir, peerCACertFile)), mustRead(t, filepath.Join(dir, peerCAKeyFile))
	if err := ensurePeerCA(dir); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cert, mustRead(t, filepath.Join(dir, peerCACertFile))) || !bytes.Equal(key, mustRead(t, filepath.Join(dir, peerCAKeyFile))) {
		t.Fatal("a second ensurePeerCA replaced the CA")
	}
	ca := mustReadCert(t, filepath.Join(dir, peerCACertFile))
	if !ca.IsCA || ca.KeyUsage&x509.KeyUsageCertSign == 0 || ca.CheckSignatureFrom(ca) != nil {
		t.Errorf("peer CA: IsCA %v, key usage %v: want a self-signed CA that signs certificates", ca.IsCA, ca.KeyUsage)
	}
	if _, err := tls.LoadX509KeyPair(filepath.Join(dir, peerCACertFile), filepath.Join(dir, peerCAKeyFile)); err != nil {
		t.Errorf("peer CA key and certificate: %v", err)
	}
	for _, f := range []string{peerCACertFile, peerCAKeyFile} {
		if m := mode(t, filepath.Join(dir, f)); m != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f, m)
		}
	}
}

func mustReadCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	c, err := readCert(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// wantPeerCert checks dir's peer certificate: the CA's, for ip, good to
// dial peers and to be dialled by them.
func wantPeerCert(t *testing.T, dir, name, ip string) *x509.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, peerCertFile), filepath.Join(dir, peerKeyFile))
	if err != nil {
		t.Fatalf("peer key and certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(mustReadCert(t, filepath.Join(dir, peerCACertFile)))
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: ip, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("peer certificate for %s, usage %v: %v", ip, usage, err)
		}
	}
	if cert.Subject.CommonName != name || cert.IsCA {
		t.Errorf("peer certificate: CN %q, IsCA %v; want %q, not a CA", cert.Subject.CommonName, cert.IsCA, name)
	}
	if len(cert.IPAddresses) != 1 || !cert.IPAddresses[0].Equal(net.ParseIP(ip)) {
		t.Errorf("peer certificate IPs %v, want only %s", cert.IPAddresses, ip)
	}
	if m := mode(t, filepath.Join(dir, peerKeyFile)); m != 0o600 {
		t.Errorf("peer key: mode %v, want 0600", m)
	}
	return cert
}

func TestEnsurePeerCert(t *testing.T) {
	dir := t.TempDir()
	if err := ensurePeerCert(dir, "s1", "10.0.0.1"); err == nil {
		t.Fatal("a peer certificate without a peer CA")
	}
	if err := ensurePeerCA(dir); err != nil {
		t.Fatal(err)
	}
	if err := ensurePeerCert(dir, "s1", "10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	first := wantPeerCert(t, dir, "s1", "10.0.0.1")

	if err := ensurePeerCert(dir, "s1", "10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if again := wantPeerCert(t, dir, "s1", "10.0.0.1"); !again.Equal(first) {
		t.Error("the peer certificate was made again for the same address")
	}

	if err := ensurePeerCert(dir, "s1", "10.0.0.2"); err != nil {
		t.Fatal(err)
	}
	if moved := wantPeerCert(t, dir, "s1", "10.0.0.2"); moved.Equal(first) {
		t.Error("the peer certificate was kept for a new address")
	}

	if err := ensurePeerCert(dir, "s1", "fd00::2"); err != nil {
		t.Fatal(err)
	}
	wantPeerCert(t, dir, "s1", "fd00::2")
}

// TestEnsurePeerCertRenews: a peer certificate that expires within 30
// days is made again.
func TestEnsurePeerCertRenews(t *testing.T) {
	dir := t.TempDir()
	if err := ensurePeerCA(dir); err != nil {
		t.Fatal(err)
	}
	ca := mustReadCert(t, filepath.Join(dir, peerCACertFile))
	caKey, err := readECKey(filepath.Join(dir, peerCAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := certTemplate("s1")
	if err != nil {
		t.Fatal(err)
	}
	tmpl.NotAfter = time.Now().Add(10 * 24 * time.Hour)
	tmpl.IPAddresses = []net.IP{net.ParseIP("10.0.0.1")}
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeCertAndKey(dir, peerCertFile, peerKeyFile, der, key); err != nil {
		t.Fatal(err)
	}
	if err := ensurePeerCert(dir, "s1", "10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if cert := wantPeerCert(t, dir, "s1", "10.0.0.1"); cert.NotAfter.Before(time.Now().Add(365 * 24 * time.Hour)) {
		t.Errorf("peer certificate expiring %v was not renewed", cert.NotAfter)
	}
}

func TestEtcdMemberFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etcd")
	if m, err := loadEtcdMember(dir); m != nil || err != nil {
		t.Fatalf("no member file: %+v, %v; want nil, nil", m, err)
	}
	want := etcdMember{Name: "s2", PeerURL: "https://10.0.0.2:2380", InitialCluster: "s1=https://10.0.0.1:2380,s2=https://10.0.0.2:2380", Existing: true}
	if err := want.save(dir); err != nil {
		t.Fatal(err)
	}
	got, err := loadEtcdMember(dir)
	if err != nil || got == nil || *got != want {
		t.Fatalf("round trip: %+v, %v; want %+v", got, err, want)
	}
	if m := mode(t, filepath.Join(dir, memberFile)); m != 0o600 {
		t.Errorf("member file: mode %v, want 0600", m)
	}
	want.Existing = false
	if err := want.save(dir); err != nil {
		t.Fatal(err)
	}
	if got, err := loadEtcdMember(dir); err != nil || *got != want {
		t.Fatalf("saved again: %+v, %v; want %+v", got, err, want)
	}
}

func TestEtcdMemberFileRefused(t *testing.T) {
	for name, content := range map[string]string{
		"no name":    `{"peerURL": "https://10.0.0.2:2380", "initialCluster": "s2=https://10.0.0.2:2380"}`,
		"no peerURL": `{"name": "s2", "initialCluster": "s2=https://10.0.0.2:2380"}`,
		"empty":      `{}`,
		"not JSON":   `name: s2`,
		"a list":     `[]`,
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, memberFile)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if m, err := loadEtcdMember(dir); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: %+v, %v; want an error naming %s", name, m, err, path)
		}
	}
}

func TestEtcdDataExists(t *testing.T) {
	dir := t.TempDir()
	if etcdDataExists(dir) {
		t.Fatal("etcd data in an empty directory")
	}
	// etcd makes its data directory before its first start can fail.
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	if etcdDataExists(dir) {
		t.Fatal("etcd data in an empty data directory")
	}
	if err := os.MkdirAll(filepath.Join(dir, "data", "member"), 0o700); err != nil {
		t.Fatal(err)
	}
	if !etcdDataExists(dir) {
		t.Fatal("no etcd data after etcd made data/member")
	}
}

func TestPeerURL(t *testing.T) {
	for ip, want := range map[string]string{"10.0.0.1": "https://10.0.0.1:2380", "fd00::1": "https://[fd00::1]:2380"} {
		if got := peerURL(ip, DefaultEtcdPeerPort); got != want {
			t.Errorf("peerURL(%s): %s, want %s", ip, got, want)
		}
		if err := validateJoinRequest(JoinRequest{Name: "s1", PeerURL: peerURL(ip, DefaultEtcdPeerPort)}); err != nil {
			t.Errorf("a join with peerURL(%s): %v", ip, err)
		}
	}
}

// TestClusterPeers: a member's etcd listens for its peers at its peer URL
// with mutual TLS under the cluster's CA, founds or joins as its member
// file says, and takes a new cluster's own token.
func TestClusterPeers(t *testing.T) {
	for _, m := range []etcdMember{
		{Name: "s1", PeerURL: "https://10.0.0.1:2380", InitialCluster: "s1=https://10.0.0.1:2380", ClusterToken: "skiff-0123"},
		{Name: "s2", PeerURL: "https://[fd00::2]:12380", InitialCluster: "s1=https://10.0.0.1:2380,s2=https://[fd00::2]:12380", Existing: true},
	} {
		dir := t.TempDir()
		if err := ensurePeerCA(dir); err != nil {
			t.Fatal(err)
		}
		cfg := embed.NewConfig()
		defaultToken := cfg.InitialClusterToken
		if err := clusterPeers(cfg, dir, &m); err != nil {
			t.Fatal(err)
		}
		wantState, wantToken := embed.ClusterStateFlagNew, m.ClusterToken
		if m.Existing {
			wantState, wantToken = embed.ClusterStateFlagExisting, defaultToken
		}
		if cfg.Name != m.Name || cfg.InitialCluster != m.InitialCluster || cfg.ClusterState != wantState || cfg.InitialClusterToken != wantToken {
			t.Errorf("%s: name %q, initial cluster %q, state %q, token %q", m.Name, cfg.Name, cfg.InitialCluster, cfg.ClusterState, cfg.InitialClusterToken)
		}
		for _, urls := range [][]url.URL{cfg.ListenPeerUrls, cfg.AdvertisePeerUrls} {
			if len(urls) != 1 || urls[0].String() != m.PeerURL {
				t.Errorf("%s: peer URLs %v, want %s", m.Name, urls, m.PeerURL)
			}
		}
		tlsInfo := cfg.PeerTLSInfo
		if !tlsInfo.ClientCertAuth || tlsInfo.TrustedCAFile != filepath.Join(dir, peerCACertFile) ||
			tlsInfo.CertFile != filepath.Join(dir, peerCertFile) || tlsInfo.KeyFile != filepath.Join(dir, peerKeyFile) {
			t.Errorf("%s: peer TLS %+v, want mutual TLS under the peer CA", m.Name, tlsInfo)
		}
		u, _ := url.Parse(m.PeerURL)
		wantPeerCert(t, dir, m.Name, u.Hostname())
	}
}
