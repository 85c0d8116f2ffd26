package apiserver

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"skiff.dev/skiff/identity"
)

// Files in the data directory.
const (
	servingCertFile = "serving.crt"
	servingKeyFile  = "serving.key"
	adminKeyFile    = "admin.key"
	adminCertFile   = "admin.crt"
	mcpKeyFile      = "mcp.key"
	mcpCertFile     = "mcp.crt"
	// agentClientKeyFile is the API server's identity towards agents: a
	// key of its own, not the serving certificate's.
	agentClientKeyFile  = "apiserver-client.key"
	agentClientCertFile = "apiserver-client.crt"
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
// missing: serving certificate, join token, audit policy.
func (d dataDir) ensure(hosts []string) error {
	if err := os.MkdirAll(d.path, 0o700); err != nil {
		return fmt.Errorf("data dir %q: %w", d.path, err)
	}
	if err := os.Chmod(d.path, 0o700); err != nil {
		return fmt.Errorf("data dir %q: %w", d.path, err)
	}
	if err := d.ensureServingCert(hosts); err != nil {
		return err
	}
	if err := d.ensureJoinToken(); err != nil {
		return err
	}
	return d.ensureFile(auditPolicyFile, func() ([]byte, error) { return []byte(defaultAuditPolicy), nil })
}

// Metadata level: who did what to which object, without request bodies
// (which may one day hold secrets).
const defaultAuditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
# Secrets never above Metadata, whatever is added below: their values
# would be in the request and response bodies.
- level: Metadata
  resources:
  - group: ""
    resources: ["secrets"]
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

// clientCert is the renewed certificate file of the identity in keyFile.
type clientCert struct {
	identity.CertFile
	keyPath string
	// kubeconfig, when set, is rewritten (certificate embedded) when the
	// certificate is.
	kubeconfig string
	server     string
}

// loadClientCert loads (or creates) the identity in keyFile and makes sure
// certFile holds a certificate for it as user that needs no renewal.
func (d dataDir) loadClientCert(keyFile, certFile, user string) (clientCert, error) {
	id, _, err := identity.LoadOrCreate(d.file(keyFile))
	if err != nil {
		return clientCert{}, err
	}
	c := clientCert{CertFile: identity.CertFile{ID: id, CommonName: user, Path: d.file(certFile)}, keyPath: d.file(keyFile)}
	if _, err := c.Ensure(time.Now(), false); err != nil {
		return clientCert{}, err
	}
	return c, nil
}

// writeKubeconfig writes c's kubeconfig for server: the current
// certificate and key embedded, so that the file can be copied anywhere.
func (d dataDir) writeKubeconfig(c clientCert) error {
	certPEM, err := c.PEM()
	if err != nil {
		return err
	}
	keyPEM, err := c.ID.KeyPEM()
	if err != nil {
		return err
	}
	ca, err := os.ReadFile(d.file(servingCertFile))
	if err != nil {
		return fmt.Errorf("serving certificate: %w", err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["skiff"] = &clientcmdapi.Cluster{Server: c.server, CertificateAuthorityData: ca, TLSServerName: d.tlsServerName(c.server)}
	cfg.AuthInfos[c.CommonName] = &clientcmdapi.AuthInfo{ClientCertificateData: certPEM, ClientKeyData: keyPEM}
	cfg.Contexts["skiff"] = &clientcmdapi.Context{Cluster: "skiff", AuthInfo: c.CommonName, Namespace: DefaultNamespace}
	cfg.CurrentContext = "skiff"
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	return identity.WriteFileAtomic(c.kubeconfig, data, 0o600)
}

// restConfig is a client configuration for c that re-reads the
// certificate file, so that renewals reach long-running clients.
func (d dataDir) restConfig(c clientCert) (*rest.Config, error) {
	ca, err := os.ReadFile(d.file(servingCertFile))
	if err != nil {
		return nil, fmt.Errorf("serving certificate: %w", err)
	}
	return &rest.Config{Host: c.server, TLSClientConfig: rest.TLSClientConfig{
		CAData: ca, CertFile: c.Path, KeyFile: c.keyPath, ServerName: d.tlsServerName(c.server),
	}}, nil
}

// tlsServerName is the name a client of server verifies the serving
// certificate with: none when the certificate names server's host (a
// server's own), else identity.ServingName (the cluster's certificate,
// which names the first server's address, served by another).
func (d dataDir) tlsServerName(server string) string {
	cert, err := d.servingCertificate()
	if err != nil {
		return ""
	}
	u, err := url.Parse(server)
	if err != nil || cert.VerifyHostname(u.Hostname()) == nil {
		return ""
	}
	return identity.ServingName
}

// RenewAdminKubeconfig renews the admin's certificate in dataDir (when
// due, or always with force) and rewrites admin.kubeconfig with it,
// keeping its server URL. It reports whether it renewed.
func RenewAdminKubeconfig(dir string, force bool) (bool, error) {
	d := dataDir{path: dir}
	path := d.file(AdminKubeconfigFile)
	old, err := clientcmd.LoadFromFile(path)
	if err != nil {
		return false, fmt.Errorf("admin kubeconfig (has `skiff server --data-dir %s` run yet?): %w", dir, err)
	}
	cluster, ok := old.Clusters["skiff"]
	if !ok {
		return false, fmt.Errorf("%s: no cluster named skiff", path)
	}
	keyPEM, err := os.ReadFile(d.file(adminKeyFile))
	if err != nil {
		return false, fmt.Errorf("admin identity: %w", err)
	}
	id, err := identity.ParseKeyPEM(keyPEM)
	if err != nil {
		return false, fmt.Errorf("admin identity %s: %w", d.file(adminKeyFile), err)
	}
	c := clientCert{CertFile: identity.CertFile{ID: id, CommonName: AdminUser, Path: d.file(adminCertFile)}, keyPath: d.file(adminKeyFile), kubeconfig: path, server: cluster.Server}
	renewed, err := c.Ensure(time.Now(), force)
	if err != nil || !renewed {
		return false, err
	}
	return true, d.writeKubeconfig(c)
}
