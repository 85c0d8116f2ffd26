package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
)

// etcdPKI is a test CA and the certificates issued by it, as PEM files.
type etcdPKI struct {
	CA                    string // the CA certificate
	ServerCert, ServerKey string // the members' (127.0.0.1; server and peer auth)
	ClientCert, ClientKey string // skiff's and the test's client certificate
}

// newEtcdPKI writes a fresh CA, a member certificate for 127.0.0.1 and a
// client certificate into dir.
func newEtcdPKI(t *testing.T, dir string) etcdPKI {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	serial := int64(0)
	template := func(cn string) *x509.Certificate {
		serial++
		return &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
		}
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	writeKey := func(name string, k *ecdsa.PrivateKey) string {
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return write(name, "EC PRIVATE KEY", der)
	}

	caKey := newKey()
	caTmpl := template("skiff e2e etcd CA")
	caTmpl.IsCA = true
	caTmpl.BasicConstraintsValid = true
	caTmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(cn string, usage []x509.ExtKeyUsage, ips []net.IP) ([]byte, *ecdsa.PrivateKey) {
		k := newKey()
		tmpl := template(cn)
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = usage
		tmpl.IPAddresses = ips
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	srvDER, srvKey := issue("etcd-member", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, []net.IP{net.IPv4(127, 0, 0, 1)})
	cliDER, cliKey := issue("skiff-apiserver", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil)
	return etcdPKI{
		CA:         write("ca.crt", "CERTIFICATE", caDER),
		ServerCert: write("member.crt", "CERTIFICATE", srvDER),
		ServerKey:  writeKey("member.key", srvKey),
		ClientCert: write("client.crt", "CERTIFICATE", cliDER),
		ClientKey:  writeKey("client.key", cliKey),
	}
}

// etcdMember is one member of the test's etcd cluster, in this process.
type etcdMember struct {
	name      string
	clientURL string // https://127.0.0.1:PORT
	logPath   string
	e         *embed.Etcd

	closed    atomic.Bool
	closeOnce sync.Once
}

// close stops the member (etcd's graceful stop: its clients are cut, a
// leader hands over its leadership); it is safe to call more than once.
// The member counts as closed from the start of the call.
func (m *etcdMember) close() {
	m.closed.Store(true)
	m.closeOnce.Do(m.e.Close)
}

func (m *etcdMember) isClosed() bool { return m.closed.Load() }

// freePorts returns n distinct TCP ports on 127.0.0.1 free at the time of
// the call (held together, so they differ).
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// startEtcdCluster starts a three-member etcd cluster on 127.0.0.1 over
// TCP, clients and peers on mutual TLS, each member in a directory of its
// own, and waits until every member is ready and they agree on a leader.
// The members are closed at cleanup. A port taken between freePorts and
// the listen (another process) makes it try again with new ports.
func startEtcdCluster(t *testing.T, pki etcdPKI) []*etcdMember {
	t.Helper()
	var lastErr error
	for attempt := 1; attempt <= 3; attempt++ {
		members, err := tryStartEtcdCluster(t, pki)
		if err == nil {
			return members
		}
		lastErr = err
		t.Logf("etcd cluster, attempt %d: %v", attempt, err)
	}
	t.Fatalf("etcd cluster did not start: %v", lastErr)
	return nil
}

func tryStartEtcdCluster(t *testing.T, pki etcdPKI) ([]*etcdMember, error) {
	ports := freePorts(t, 6)
	tls := transport.TLSInfo{
		CertFile:       pki.ServerCert,
		KeyFile:        pki.ServerKey,
		TrustedCAFile:  pki.CA,
		ClientCertAuth: true,
	}
	var initial []string
	for i := range 3 {
		initial = append(initial, fmt.Sprintf("m%d=https://127.0.0.1:%d", i+1, ports[2*i+1]))
	}
	token := fmt.Sprintf("skiff-e2e-%d", time.Now().UnixNano())
	var members []*etcdMember
	closeAll := func() {
		for _, m := range members {
			m.close()
		}
	}
	for i := range 3 {
		client := url.URL{Scheme: "https", Host: fmt.Sprintf("127.0.0.1:%d", ports[2*i])}
		peer := url.URL{Scheme: "https", Host: fmt.Sprintf("127.0.0.1:%d", ports[2*i+1])}
		dir := t.TempDir()
		cfg := embed.NewConfig()
		cfg.Name = fmt.Sprintf("m%d", i+1)
		cfg.Dir = filepath.Join(dir, "data")
		cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
		cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
		cfg.InitialCluster = strings.Join(initial, ",")
		cfg.InitialClusterToken = token
		cfg.ClusterState = embed.ClusterStateFlagNew
		cfg.ClientTLSInfo, cfg.PeerTLSInfo = tls, tls
		cfg.LogLevel = "info"
		logPath := filepath.Join(dir, "etcd.log")
		cfg.LogOutputs = []string{logPath}
		e, err := embed.StartEtcd(cfg)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("start member %s: %w", cfg.Name, err)
		}
		members = append(members, &etcdMember{name: cfg.Name, clientURL: client.String(), logPath: logPath, e: e})
	}
	deadline := time.After(30 * time.Second)
	for _, m := range members {
		select {
		case <-m.e.Server.ReadyNotify():
		case err := <-m.e.Err():
			closeAll()
			return nil, fmt.Errorf("member %s: %w", m.name, err)
		case <-deadline:
			closeAll()
			return nil, fmt.Errorf("member %s not ready within 30s", m.name)
		}
	}
	t.Cleanup(func() {
		closeAll()
		if t.Failed() {
			for _, m := range members {
				dumpTail(t, m.logPath, 30)
			}
		}
	})
	// Every member knows the same leader.
	waitFor(t, 30*time.Second, func() (bool, error) {
		lead := members[0].e.Server.Leader()
		for _, m := range members {
			if l := m.e.Server.Leader(); l == 0 || l != lead {
				return false, nil
			}
		}
		return true, nil
	})
	return members, nil
}

// leader is the member that leads, among those not closed; nil when the
// open members do not agree on one of them.
func leader(members []*etcdMember) *etcdMember {
	var lead *etcdMember
	for _, m := range members {
		if m.isClosed() {
			continue
		}
		if m.e.Server.Leader() == m.e.Server.MemberID() {
			if lead != nil {
				return nil
			}
			lead = m
		}
	}
	for _, m := range members {
		if !m.isClosed() && lead != nil && m.e.Server.Leader() != lead.e.Server.MemberID() {
			return nil
		}
	}
	return lead
}

func dumpTail(t *testing.T, path string, lines int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Logf("%s: %v", path, err)
		return
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	t.Logf("last %d lines of %s:\n%s", len(all), path, strings.Join(all, "\n"))
}

// etcdClient is a client of the members' client URLs with the test's
// client certificate.
func etcdClient(t *testing.T, pki etcdPKI, endpoints []string) *clientv3.Client {
	t.Helper()
	tlsCfg, err := transport.TLSInfo{CertFile: pki.ClientCert, KeyFile: pki.ClientKey, TrustedCAFile: pki.CA}.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, TLS: tlsCfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
