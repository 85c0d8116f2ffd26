package apiserver

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"skiff.dev/skiff/identity"
)

// Files in the data directory.
const (
	servingCertFile = "serving.crt"
	servingKeyFile  = "serving.key"
	adminKeyFile    = "admin.key"
	mcpKeyFile      = "mcp.key"
	// AdminKubeconfigFile is the admin's kubeconfig, rewritten at each start.
	AdminKubeconfigFile = "admin.kubeconfig"
	// JoinTokenFile holds the token node agents join with.
	JoinTokenFile   = "join-token"
	auditPolicyFile = "audit-policy.yaml"
	auditLogFile    = "audit.log"
)

// AdminUser is the user name of the admin identity.
const AdminUser = "skiff:admin"

// dataDir is the server's state on disk. Everything is created on first
// start and reused afterwards.
type dataDir struct {
	path string
}

func (d dataDir) file(name string) string { return filepath.Join(d.path, name) }

// ensure creates the directory (0700) and every first-start file that is
// missing: serving certificate, admin identity, join token, audit policy.
func (d dataDir) ensure(hosts []string) (*identity.Identity, error) {
	if err := os.MkdirAll(d.path, 0o700); err != nil {
		return nil, fmt.Errorf("data dir %q: %w", d.path, err)
	}
	if err := os.Chmod(d.path, 0o700); err != nil {
		return nil, fmt.Errorf("data dir %q: %w", d.path, err)
	}
	if err := d.ensureServingCert(hosts); err != nil {
		return nil, err
	}
	admin, _, err := identity.LoadOrCreate(d.file(adminKeyFile))
	if err != nil {
		return nil, err
	}
	if err := d.ensureJoinToken(); err != nil {
		return nil, err
	}
	if err := d.ensureFile(auditPolicyFile, func() ([]byte, error) { return []byte(defaultAuditPolicy), nil }); err != nil {
		return nil, err
	}
	return admin, nil
}

// Metadata level: who did what to which object, without request bodies
// (which may one day hold secrets).
const defaultAuditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: None
  nonResourceURLs: ["/livez*", "/readyz*", "/healthz*", "/health", "/live", "/ready", "/metrics"]
# Nodes renew their Lease every few seconds: thousands of records a minute
# that say only that the node is alive.
- level: None
  userGroups: ["skiff:nodes"]
  verbs: ["get", "update", "patch"]
  namespaces: ["skiff-node-lease"]
  resources:
  - group: coordination.k8s.io
    resources: ["leases"]
- level: Metadata
`

// ensureJoinToken writes the join token on first start, and rewrites its
// certificate hash (keeping the secret) if the serving certificate changed.
func (d dataDir) ensureJoinToken() error {
	cert, err := d.servingCertificate()
	if err != nil {
		return err
	}
	path := d.file(JoinTokenFile)
	if data, err := os.ReadFile(path); err == nil {
		tok, err := identity.ParseJoinToken(string(data))
		if err == nil && bytes.Equal(tok.CAHash, identity.CertificateHash(cert)) {
			return nil
		}
		if err == nil {
			tok.CAHash = identity.CertificateHash(cert)
			return identity.WriteFileAtomic(path, []byte(tok.String()+"\n"), 0o600)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w", path, err)
	}
	tok, err := identity.NewJoinToken(cert)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return identity.WriteFileAtomic(path, []byte(tok.String()+"\n"), 0o600)
}

// joinToken reads the join token.
func (d dataDir) joinToken() (identity.JoinToken, error) {
	data, err := os.ReadFile(d.file(JoinTokenFile))
	if err != nil {
		return identity.JoinToken{}, fmt.Errorf("join token: %w", err)
	}
	return identity.ParseJoinToken(string(data))
}

func (d dataDir) servingCertificate() (*x509.Certificate, error) {
	data, err := os.ReadFile(d.file(servingCertFile))
	if err != nil {
		return nil, fmt.Errorf("serving certificate: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("serving certificate %s: no PEM block", d.file(servingCertFile))
	}
	return x509.ParseCertificate(block.Bytes)
}

func (d dataDir) ensureFile(name string, content func() ([]byte, error)) error {
	path := d.file(name)
	if _, err := os.Stat(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	data, err := content()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := identity.WriteFileAtomic(path, data, 0o600); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// ensureServingCert writes a self-signed serving certificate for the
// loopback names and hosts, unless one exists. Clients pin it as their CA.
func (d dataDir) ensureServingCert(hosts []string) error {
	return identity.EnsureServingCert(d.file(servingCertFile), d.file(servingKeyFile), "skiff-apiserver", hosts)
}

// writeKubeconfig writes a kubeconfig for id as user at server, trusting
// the serving certificate.
func (d dataDir) writeKubeconfig(path, server, user string, id *identity.Identity) error {
	cfg, err := d.kubeconfig(server, user, id)
	if err != nil {
		return err
	}
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	return identity.WriteFileAtomic(path, data, 0o600)
}

func (d dataDir) kubeconfig(server, user string, id *identity.Identity) (*clientcmdapi.Config, error) {
	ca, err := os.ReadFile(d.file(servingCertFile))
	if err != nil {
		return nil, fmt.Errorf("serving certificate: %w", err)
	}
	certPEM, err := id.ClientCertificate(user, time.Now())
	if err != nil {
		return nil, err
	}
	keyPEM, err := id.KeyPEM()
	if err != nil {
		return nil, err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["skiff"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: certPEM, ClientKeyData: keyPEM}
	cfg.Contexts["skiff"] = &clientcmdapi.Context{Cluster: "skiff", AuthInfo: user, Namespace: DefaultNamespace}
	cfg.CurrentContext = "skiff"
	return cfg, nil
}
