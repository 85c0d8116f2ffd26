package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"skiff.dev/skiff/apiserver"
	"skiff.dev/skiff/identity"
)

func newKubeconfigCommand() *cobra.Command {
	dataDir := apiserver.DefaultDataDir()
	renew := false
	var ik identityKubeconfig
	cmd := &cobra.Command{
		Use:   "kubeconfig [--identity [FILE] --server URL]",
		Short: "Print the admin kubeconfig of the server whose data directory this is, or one for your identity",
		Long: "skiff kubeconfig prints the admin kubeconfig from the server's data directory. Its client\n" +
			"certificate lasts a year; the server renews it (and rewrites admin.kubeconfig) once two\n" +
			"thirds of that have passed, and so does this command. --renew renews it now, e.g. for a\n" +
			"copy kept elsewhere.\n\n" +
			"With --identity, it writes a kubeconfig for your personal identity (skiff identity new)\n" +
			"instead: a client certificate self-signed by your key, which lasts a year, for the server\n" +
			"at --server. The server's certificate comes from --certificate-authority, or is fetched\n" +
			"and checked against --ca-hash (its SHA-256, the middle field of the join token), or,\n" +
			"with neither, is fetched and trusted on first use: compare the SHA-256 it prints.",
		Example: "  skiff kubeconfig > ~/.kube/config\n" +
			"  skiff kubeconfig --identity --server https://skiff.example:6443 --ca-hash 3f1c…e9 -o ~/.kube/config",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := ik.complete(cmd.Flags(), args); err != nil {
				return err
			}
			if ik.path != "" {
				return ik.run(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), time.Now())
			}
			renewed, err := apiserver.RenewAdminKubeconfig(dataDir, renew)
			if err != nil {
				return err
			}
			if renewed {
				fmt.Fprintln(cmd.ErrOrStderr(), "skiff kubeconfig: renewed the admin's client certificate")
			}
			data, err := os.ReadFile(filepath.Join(dataDir, apiserver.AdminKubeconfigFile))
			if err != nil {
				return fmt.Errorf("admin kubeconfig: %w", err)
			}
			_, err = cmd.OutOrStdout().Write(data)
			return err
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", dataDir, "the server's data directory")
	cmd.Flags().BoolVar(&renew, "renew", false, "renew the admin's client certificate now (it lasts a year)")
	ik.addFlags(cmd.Flags())
	return cmd
}

// identityKubeconfig is `skiff kubeconfig --identity`: a kubeconfig for a
// personal identity.
type identityKubeconfig struct {
	// path is the identity file; empty in admin mode.
	path      string
	server    string
	trust     serverTrust
	namespace string
	output    string
}

// identityFlags are the flags that only --identity takes; adminFlags those
// it does not.
var (
	identityFlags = []string{"server", "certificate-authority", "ca-hash", "namespace", "output"}
	adminFlags    = []string{"data-dir", "renew"}
)

func (k *identityKubeconfig) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&k.path, "identity", "", "write a kubeconfig for this identity file instead of the admin's (the file may also follow the flag)")
	fs.Lookup("identity").NoOptDefVal = defaultIdentityFlag()
	fs.StringVar(&k.server, "server", "", "with --identity: the API server's URL (https://host:port)")
	k.trust.addFlags(fs)
	fs.StringVarP(&k.namespace, "namespace", "n", "", "with --identity: the context's namespace")
	fs.StringVarP(&k.output, "output", "o", "", "with --identity: write the kubeconfig to this file (0600) instead of stdout")
}

// defaultIdentityFlag is what --identity means without a value.
func defaultIdentityFlag() string {
	path, err := identity.DefaultIdentityPath()
	if err != nil {
		return "$HOME/.config/skiff/identity"
	}
	return path
}

// complete checks which mode the flags ask for, and takes a positional
// argument after a bare --identity as its file.
func (k *identityKubeconfig) complete(fs *pflag.FlagSet, args []string) error {
	if !fs.Changed("identity") {
		for _, name := range identityFlags {
			if fs.Changed(name) {
				return fmt.Errorf("--%s needs --identity (without it, skiff kubeconfig prints the admin's kubeconfig)", name)
			}
		}
		if len(args) > 0 {
			return fmt.Errorf("unexpected argument %q", args[0])
		}
		return nil
	}
	for _, name := range adminFlags {
		if fs.Changed(name) {
			return fmt.Errorf("--%s is for the admin kubeconfig, not --identity", name)
		}
	}
	if len(args) > 0 {
		if k.path != fs.Lookup("identity").NoOptDefVal {
			return fmt.Errorf("unexpected argument %q (the identity file is %q)", args[0], k.path)
		}
		k.path = args[0]
	}
	if k.path == "" {
		return errors.New("--identity: empty file name")
	}
	if k.server == "" {
		return errors.New("--identity needs --server: the API server's URL, e.g. https://skiff.example:6443")
	}
	if _, err := parseServerURL(k.server); err != nil {
		return err
	}
	return k.trust.validate()
}

// run writes the kubeconfig to k.output, or to stdout; warnings go to stderr.
func (k *identityKubeconfig) run(ctx context.Context, stdout, stderr io.Writer, now time.Time) error {
	p, err := identity.LoadPersonal(k.path)
	if err != nil {
		return err
	}
	server, err := parseServerURL(k.server)
	if err != nil {
		return err
	}
	ca, err := k.trust.certificateAuthority(ctx, server, stderr)
	if err != nil {
		return err
	}
	data, err := personalKubeconfig(p, server.String(), ca, k.namespace, now)
	if err != nil {
		return err
	}
	if k.output == "" {
		_, err = stdout.Write(data)
		return err
	}
	if err := identity.WriteFileAtomic(k.output, data, 0o600); err != nil {
		return fmt.Errorf("kubeconfig %q: %w", k.output, err)
	}
	fmt.Fprintf(stderr, "skiff kubeconfig: wrote %s for %s (%s)\n", k.output, p.DisplayName(), p.UserName())
	return nil
}

// personalKubeconfig is a kubeconfig for p at server: a client certificate
// self-signed by p's key, valid from now, and the key, both embedded.
func personalKubeconfig(p *identity.Personal, server string, caPEM []byte, namespace string, now time.Time) ([]byte, error) {
	certPEM, err := p.ClientCertificate(p.DisplayName(), now)
	if err != nil {
		return nil, err
	}
	keyPEM, err := p.KeyPEM()
	if err != nil {
		return nil, err
	}
	user := p.UserName()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["skiff"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: certPEM, ClientKeyData: keyPEM}
	cfg.Contexts["skiff"] = &clientcmdapi.Context{Cluster: "skiff", AuthInfo: user, Namespace: namespace}
	cfg.CurrentContext = "skiff"
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return data, nil
}

// parseServerURL reads an https URL with a host.
func parseServerURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("--server %q: %w", s, err)
	}
	if u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("--server %q: want https://host[:port]", s)
	}
	return u, nil
}

// serverTrust says how a client comes to trust the API server's
// certificate: a CA file, or the certificate the server presents, pinned by
// its SHA-256 or (with neither) trusted on first use.
type serverTrust struct {
	caFile string
	caHash string
}

func (t *serverTrust) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&t.caFile, "certificate-authority", "", "a PEM file of the certificate(s) to trust for the server")
	fs.StringVar(&t.caHash, "ca-hash", "", "trust the certificate the server presents if its SHA-256 (hex; the join token's middle field) is this")
}

func (t *serverTrust) validate() error {
	if t.caFile != "" && t.caHash != "" {
		return errors.New("--certificate-authority and --ca-hash: pass one")
	}
	if t.caHash != "" {
		if _, err := t.pin(); err != nil {
			return err
		}
	}
	return nil
}

// pin decodes --ca-hash.
func (t *serverTrust) pin() ([]byte, error) {
	h, err := hex.DecodeString(t.caHash)
	if err != nil || len(h) != sha256.Size {
		return nil, fmt.Errorf("--ca-hash %q: want the %d hex digits of a SHA-256", t.caHash, 2*sha256.Size)
	}
	return h, nil
}

// certificateAuthority returns the PEM certificates to trust for server.
// Trusting on first use, it warns on stderr.
func (t *serverTrust) certificateAuthority(ctx context.Context, server *url.URL, stderr io.Writer) ([]byte, error) {
	if t.caFile != "" {
		return readCertificates(t.caFile)
	}
	var pin []byte
	if t.caHash != "" {
		var err error
		if pin, err = t.pin(); err != nil {
			return nil, err
		}
	}
	cert, err := presentedCertificate(ctx, server, pin)
	if err != nil {
		return nil, err
	}
	if pin == nil {
		fmt.Fprintf(stderr, "skiff: WARNING: trusting the certificate %s presented without checking it (trust on first use).\n"+
			"  Its SHA-256 is %x\n"+
			"  Compare it with the server's: the middle field of its join token (skiff1:<sha256>:…), or\n"+
			"  `openssl x509 -in <data-dir>/serving.crt -outform DER | sha256sum` on the server. Next time pass --ca-hash.\n",
			server.Host, identity.CertificateHash(cert))
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), nil
}

// readCertificates reads a PEM file that must hold at least one certificate.
func readCertificates(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--certificate-authority: %w", err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("--certificate-authority %q: no PEM certificate", path)
	}
	return data, nil
}

// dialTimeout bounds fetching the server's certificate.
const dialTimeout = 10 * time.Second

// presentedCertificate dials server and returns the leaf certificate it
// presents; with pin set, only one whose SHA-256 is pin.
func presentedCertificate(ctx context.Context, server *url.URL, pin []byte) (*x509.Certificate, error) {
	addr := server.Host
	if server.Port() == "" {
		addr = net.JoinHostPort(server.Hostname(), "443")
	}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: dialTimeout}, Config: pinnedTLSConfig(server.Hostname(), pin)}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("fetching the certificate of %s: %w", addr, err)
	}
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState().PeerCertificates[0], nil
}

// pinnedTLSConfig trusts the server's leaf certificate if its SHA-256 is
// pin, or (pin nil, trust on first use) whatever it is.
func pinnedTLSConfig(serverName string, pin []byte) *tls.Config {
	return &tls.Config{
		ServerName: serverName,
		MinVersion: tls.VersionTLS12,
		// The chain is not verified: the leaf is checked by its hash, or
		// (trust on first use) by the person comparing the hash printed.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("server presented no certificate")
			}
			if h := sha256.Sum256(cs.PeerCertificates[0].Raw); pin != nil && subtle.ConstantTimeCompare(h[:], pin) != 1 {
				return fmt.Errorf("server certificate sha256 %x is not the --ca-hash %x", h[:], pin)
			}
			return nil
		},
	}
}
