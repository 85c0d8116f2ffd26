package apiserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"skiff.dev/skiff/identity"
)

// Files of a clustered embedded etcd, in <data-dir>/etcd.
const (
	// memberFile says this server's etcd is a member of a cluster of
	// servers (its peers are reached over TCP with mutual TLS), and how it
	// first started. Without it the etcd is a server's own, on unix
	// sockets only.
	memberFile = "member.json"
	// The peer CA is the cluster's: every member's peer certificate is
	// signed by it, and a member accepts a peer only with such a
	// certificate. Joining servers receive it.
	peerCACertFile = "peer-ca.crt"
	peerCAKeyFile  = "peer-ca.key"
	peerCertFile   = "peer.crt"
	peerKeyFile    = "peer.key"
)

// DefaultEtcdPeerPort is where a clustered server's etcd listens for its
// peers (etcd's own default).
const DefaultEtcdPeerPort = 2380

// etcdMember is memberFile: this server's place in a cluster of servers.
type etcdMember struct {
	// Name is the member's name in etcd: the server's name.
	Name string `json:"name"`
	// PeerURL is where the other members reach this one.
	PeerURL string `json:"peerURL"`
	// InitialCluster and Existing are how etcd first starts (name=URL
	// pairs; Existing: join, rather than found, the cluster). etcd reads
	// them only while its data directory is empty.
	InitialCluster string `json:"initialCluster"`
	Existing       bool   `json:"existing,omitempty"`
	// ClusterToken is the cluster's initial token (etcd derives the
	// member and cluster ids from it): random for each new cluster, so
	// that members of another, or of this one before a restore, are not
	// taken for its own.
	ClusterToken string `json:"clusterToken,omitempty"`
}

// newClusterToken is a random initial cluster token.
func newClusterToken() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "skiff-" + hex.EncodeToString(b), nil
}

// loadEtcdMember reads dir's member file; nil without one.
func loadEtcdMember(dir string) (*etcdMember, error) {
	data, err := os.ReadFile(filepath.Join(dir, memberFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("etcd member file: %w", err)
	}
	var m etcdMember
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("etcd member file %s: %w", filepath.Join(dir, memberFile), err)
	}
	if m.Name == "" || m.PeerURL == "" {
		return nil, fmt.Errorf("etcd member file %s: name and peerURL are required", filepath.Join(dir, memberFile))
	}
	return &m, nil
}

func (m *etcdMember) save(dir string) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("etcd dir %q: %w", dir, err)
	}
	return identity.WriteFileAtomic(filepath.Join(dir, memberFile), append(data, '\n'), 0o600)
}

// peerURL is the HTTPS URL of a member's peer listener.
func peerURL(ip string, port int) string {
	return "https://" + net.JoinHostPort(ip, strconv.Itoa(port))
}

// etcdDataExists tells whether etcd has started in dir before.
func etcdDataExists(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "data", "member"))
	return err == nil
}

// ensurePeerCA makes the cluster's peer CA in dir unless it is there.
func ensurePeerCA(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, peerCACertFile)); err == nil {
		return nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("etcd peer CA key: %w", err)
	}
	tmpl, err := certTemplate("skiff-etcd-peer-ca")
	if err != nil {
		return err
	}
	tmpl.IsCA = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("etcd peer CA: %w", err)
	}
	return writeCertAndKey(dir, peerCACertFile, peerCAKeyFile, der, key)
}

// ensurePeerCert makes this member's peer certificate, signed by the
// peer CA, for ip (again when the address changed).
func ensurePeerCert(dir, name, ip string) error {
	caCert, err := readCert(filepath.Join(dir, peerCACertFile))
	if err != nil {
		return err
	}
	if cert, err := readCert(filepath.Join(dir, peerCertFile)); err == nil &&
		slices.ContainsFunc(cert.IPAddresses, func(a net.IP) bool { return a.Equal(net.ParseIP(ip)) }) &&
		time.Now().Before(cert.NotAfter.Add(-30*24*time.Hour)) && cert.CheckSignatureFrom(caCert) == nil {
		return nil
	}
	caKey, err := readECKey(filepath.Join(dir, peerCAKeyFile))
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("etcd peer key: %w", err)
	}
	tmpl, err := certTemplate(name)
	if err != nil {
		return err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	// Peers are both: each dials the others and is dialled.
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	tmpl.IPAddresses = []net.IP{net.ParseIP(ip)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("etcd peer certificate: %w", err)
	}
	return writeCertAndKey(dir, peerCertFile, peerKeyFile, der, key)
}

func certTemplate(cn string) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	return &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"skiff"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		BasicConstraintsValid: true,
	}, nil
}

func writeCertAndKey(dir, certName, keyName string, der []byte, key *ecdsa.PrivateKey) error {
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := identity.WriteFileAtomic(filepath.Join(dir, keyName), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return fmt.Errorf("%s: %w", keyName, err)
	}
	if err := identity.WriteFileAtomic(filepath.Join(dir, certName), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return fmt.Errorf("%s: %w", certName, err)
	}
	return nil
}

func readCert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("certificate %s: no PEM certificate", path)
	}
	return x509.ParseCertificate(block.Bytes)
}

func readECKey(path string) (*ecdsa.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("key %s: no PEM block", path)
	}
	return x509.ParseECPrivateKey(block.Bytes)
}
