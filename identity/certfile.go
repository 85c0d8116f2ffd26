package identity

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"k8s.io/klog/v2"
)

// NeedsRenewal reports whether cert has lived two thirds of its life at
// now (about four months before a one-year certificate expires), or is
// not valid at now.
func NeedsRenewal(cert *x509.Certificate, now time.Time) bool {
	life := cert.NotAfter.Sub(cert.NotBefore)
	return !now.Before(cert.NotBefore.Add(life*2/3)) || now.Before(cert.NotBefore)
}

// CertRenewInterval is how often CertFile.Run checks its certificate.
const CertRenewInterval = time.Hour

// CertFile is a client certificate for ID, self-signed, kept in a PEM
// file (0600) and renewed before it expires. client-go re-reads a
// rest.Config's CertFile every few minutes, and the agent's TLS server
// reads it at each handshake, so a renewal needs no restart.
type CertFile struct {
	ID         *Identity
	CommonName string
	Path       string
}

// Ensure writes a new certificate unless the file holds one for ID and
// CommonName that needs no renewal at now (or when force is set). It
// reports whether it wrote one.
func (f CertFile) Ensure(now time.Time, force bool) (bool, error) {
	if !force {
		cert, err := f.Read()
		switch {
		case err == nil && cert.Subject.CommonName == f.CommonName && f.ID.Public().Equal(cert.PublicKey) && !NeedsRenewal(cert, now):
			return false, nil
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			klog.InfoS("client certificate unreadable: writing a new one", "path", f.Path, "err", err)
		}
	}
	certPEM, err := f.ID.ClientCertificate(f.CommonName, now)
	if err != nil {
		return false, err
	}
	if err := WriteFileAtomic(f.Path, certPEM, 0o600); err != nil {
		return false, fmt.Errorf("client certificate %s: %w", f.Path, err)
	}
	return true, nil
}

// Read parses the file's certificate.
func (f CertFile) Read() (*x509.Certificate, error) {
	data, err := os.ReadFile(f.Path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: no CERTIFICATE PEM block", f.Path)
	}
	return x509.ParseCertificate(block.Bytes)
}

// PEM returns the file's certificate as PEM.
func (f CertFile) PEM() ([]byte, error) {
	data, err := os.ReadFile(f.Path)
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	return data, nil
}

// TLSCertificate pairs the file's certificate with ID's key.
func (f CertFile) TLSCertificate() (*tls.Certificate, error) {
	certPEM, err := f.PEM()
	if err != nil {
		return nil, err
	}
	keyPEM, err := f.ID.KeyPEM()
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("client certificate %s: %w", f.Path, err)
	}
	return &cert, nil
}

// GetClientCertificate is TLSCertificate as tls.Config wants it for a
// client: each handshake presents the file's current certificate.
func (f CertFile) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return f.TLSCertificate()
}

// GetCertificate is TLSCertificate as tls.Config wants it for a server.
func (f CertFile) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return f.TLSCertificate()
}

// Run renews the certificate when due, checking every CertRenewInterval,
// until ctx ends; renewed (may be nil) is called after each renewal.
func (f CertFile) Run(ctx context.Context, renewed func()) error {
	t := time.NewTicker(CertRenewInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		wrote, err := f.Ensure(time.Now(), false)
		switch {
		case err != nil:
			klog.ErrorS(err, "renewing client certificate", "path", f.Path)
		case wrote:
			klog.InfoS("client certificate renewed", "path", f.Path, "user", f.CommonName)
			if renewed != nil {
				renewed()
			}
		}
	}
}
