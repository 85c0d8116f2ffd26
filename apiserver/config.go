package apiserver

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"skiff.dev/skiff/apiserver/rbac"
	"skiff.dev/skiff/identity"
	"skiff.dev/skiff/internal/xdg"
)

// Config configures the API server. Every field maps to a flag of
// `skiff server` / `skiff apiserver`.
type Config struct {
	// DataDir holds the embedded etcd, the serving certificate, the admin
	// identity and kubeconfig, the join token and the audit log (--data-dir).
	DataDir string
	// Listen is the HTTPS address, host:port; port 0 picks a free port (--listen).
	Listen string
	// EtcdServers are external etcd client URLs; when empty an embedded
	// etcd runs in DataDir/etcd (--etcd-servers).
	EtcdServers []string
	// EtcdCAFile, EtcdCertFile and EtcdKeyFile secure the connection to
	// external etcd (--etcd-cafile, --etcd-certfile, --etcd-keyfile).
	EtcdCAFile, EtcdCertFile, EtcdKeyFile string
	// EtcdPrefix is the key prefix of every object (--etcd-prefix).
	EtcdPrefix string
	// AuditLog enables the audit log in DataDir/audit.log (--audit-log).
	AuditLog bool
	// RequestTimeout ends a request that is not long-running (watches,
	// logs) after this long (--request-timeout), as kube-apiserver's.
	RequestTimeout time.Duration
	// TrustPreset is the starting trust policy (--trust-preset):
	// "restrictive" (unknown keys get 401) or "permissive" (any valid
	// self-signed key is a viewer; for development).
	TrustPreset string
	// SignatureSkew is how far a signed request's timestamp may be from the
	// server's clock (--signature-skew).
	SignatureSkew time.Duration
	// EncryptionConfig is the encryption configuration Secrets are
	// encrypted with (--encryption-config); empty: EncryptionConfigFile in
	// DataDir. Several API servers over one etcd must share one.
	EncryptionConfig string
	// ClusterInit makes the embedded etcd the first member of a cluster of
	// servers that others join (--cluster-init).
	ClusterInit bool
	// Join is the URL of a server of the cluster this one joins on its
	// first start (--join), with JoinToken, a server token or a file
	// holding one (--token).
	Join, JoinToken string
	// Name is this server's name in its cluster (--node-name).
	Name string
	// AdvertiseAddress is the IP other servers reach this one's etcd at
	// (--advertise-address); empty: the --listen address.
	AdvertiseAddress string
	// EtcdPeerPort is the port of the etcd peer listener (--etcd-peer-port).
	EtcdPeerPort int
}

// DefaultDataDir is /var/lib/skiff/server for root and
// $XDG_DATA_HOME/skiff/server (~/.local/share/skiff/server) otherwise.
func DefaultDataDir() string { return xdg.DataDir("server") }

// DefaultConfig returns the configuration `skiff server` starts with.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		Name:       host,
		DataDir:    DefaultDataDir(),
		Listen:     "127.0.0.1:6443",
		EtcdPrefix: "/registry",
		AuditLog:   true,
		// kube-apiserver's default.
		RequestTimeout: time.Minute,
		TrustPreset:    rbac.PresetRestrictive,
		SignatureSkew:  identity.DefaultSignatureSkew,
		EtcdPeerPort:   DefaultEtcdPeerPort,
	}
}

// Validate reports the first invalid field, named by its flag.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("--data-dir: must not be empty")
	}
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("--listen %q: %w", c.Listen, err)
	}
	if host != "" && net.ParseIP(host) == nil && host != "localhost" {
		return fmt.Errorf("--listen %q: host must be an IP address or localhost", c.Listen)
	}
	if c.RequestTimeout <= 0 {
		return fmt.Errorf("--request-timeout %v: must be positive", c.RequestTimeout)
	}
	if _, err := rbac.PresetBindings(c.TrustPreset); err != nil {
		return fmt.Errorf("--trust-preset: %w", err)
	}
	if c.SignatureSkew <= 0 {
		return fmt.Errorf("--signature-skew %v: must be positive", c.SignatureSkew)
	}
	if c.EtcdPrefix == "" || c.EtcdPrefix[0] != '/' {
		return fmt.Errorf("--etcd-prefix %q: must start with /", c.EtcdPrefix)
	}
	if err := c.validateCluster(); err != nil {
		return err
	}
	tls := []string{c.EtcdCAFile, c.EtcdCertFile, c.EtcdKeyFile}
	if len(c.EtcdServers) == 0 {
		for _, f := range tls {
			if f != "" {
				return errors.New("--etcd-cafile, --etcd-certfile and --etcd-keyfile need --etcd-servers")
			}
		}
	}
	if (c.EtcdCertFile == "") != (c.EtcdKeyFile == "") {
		return errors.New("--etcd-certfile and --etcd-keyfile go together")
	}
	return nil
}

// validateCluster checks the flags of a cluster of servers.
func (c *Config) validateCluster() error {
	if c.ClusterInit && c.Join != "" {
		return errors.New("--cluster-init and --join: a server starts a cluster or joins one, not both")
	}
	if (c.ClusterInit || c.Join != "") && len(c.EtcdServers) > 0 {
		return errors.New("--cluster-init and --join cluster the embedded etcd: with --etcd-servers, run several servers over that etcd instead")
	}
	if c.Join != "" {
		u, err := url.Parse(c.Join)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("--join %q: want the https:// URL of a server of the cluster", c.Join)
		}
		if c.JoinToken == "" {
			return errors.New("--join needs --token: a server token (skiff token create --role server on a server of the cluster)")
		}
	} else if c.JoinToken != "" {
		return errors.New("--token goes with --join")
	}
	if c.ClusterInit || c.Join != "" {
		if errs := validation.IsDNS1123Subdomain(c.Name); len(errs) > 0 {
			return fmt.Errorf("--node-name %q: the server's name in its cluster: %s", c.Name, strings.Join(errs, "; "))
		}
	}
	if c.AdvertiseAddress != "" {
		if ip := net.ParseIP(c.AdvertiseAddress); ip == nil || ip.IsUnspecified() {
			return fmt.Errorf("--advertise-address %q: want an IP address other servers reach", c.AdvertiseAddress)
		}
	}
	if c.EtcdPeerPort < 1 || c.EtcdPeerPort > 65535 {
		return fmt.Errorf("--etcd-peer-port %d: want 1-65535", c.EtcdPeerPort)
	}
	return nil
}

// encryptionConfigPath is --encryption-config, by default in the data
// directory.
func (c *Config) encryptionConfigPath() string {
	if c.EncryptionConfig != "" {
		return c.EncryptionConfig
	}
	return filepath.Join(c.DataDir, EncryptionConfigFile)
}
