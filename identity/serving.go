package identity

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
	"os"
	"time"
)

// ServingName is a name every serving certificate EnsureServingCert makes
// carries. The servers of a cluster share one certificate (copied when a
// server joins), which names only the first server's address: a client of
// several servers pins that certificate and verifies this name
// (tls.Config.ServerName, a kubeconfig's tls-server-name) whichever
// address it dials.
const ServingName = "localhost"

// EnsureServingCert writes a self-signed ECDSA serving certificate named
// name, valid for the loopback names and hosts, to certFile (0644) and its
// key to keyFile (0600), unless certFile exists. Clients pin the
// certificate itself as their trust anchor (kubectl's
// certificate-authority-data, the join token's hash); it is not a CA, so
// it cannot sign another certificate they would trust. A data directory
// made before keeps its certificate.
func EnsureServingCert(certFile, keyFile, name string, hosts []string) error {
	if _, err := os.Stat(certFile); err == nil {
		return nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("serving key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"skiff"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		// Not a CA: clients trust this certificate itself (pinned), and it
		// must not be able to vouch for another.
		IsCA:        false,
		DNSNames:    []string{ServingName},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("serving certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := WriteFileAtomic(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return fmt.Errorf("serving key %s: %w", keyFile, err)
	}
	if err := WriteFileAtomic(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("serving certificate %s: %w", certFile, err)
	}
	return nil
}
