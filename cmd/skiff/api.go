package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"

	"skiff.dev/skiff/identity"
)

func newAPICommand() *cobra.Command {
	var a apiRequest
	cmd := &cobra.Command{
		Use:   "api METHOD PATH [-f FILE|-] [--identity FILE] [--kubeconfig FILE] [--server URL] [-H 'Name: value']",
		Short: "Send one request to the API server, signed with your identity",
		Long: "skiff api signs one request with your identity (skiff identity new) and prints the response\n" +
			"body. No client certificate is sent: the signature alone says who you are. The server URL\n" +
			"and its certificate come from the kubeconfig (--kubeconfig, $KUBECONFIG, ~/.kube/config, or\n" +
			"the local server's admin.kubeconfig), the URL overridden by --server; or, with\n" +
			"--certificate-authority or --ca-hash, from those and --server alone. A body (-f) is sent as\n" +
			"application/json, or application/yaml for a .yaml or .yml file, unless -H sets Content-Type.\n" +
			"A status other than 2xx prints the body to stderr and fails.",
		Example: "  skiff api GET /api/v1/namespaces\n" +
			"  skiff api POST /apis/skiff.dev/v1alpha1/namespaces/default/workloads -f web.yaml\n" +
			"  echo '{\"spec\":{\"replicas\":3}}' | skiff api PATCH /apis/skiff.dev/v1alpha1/namespaces/default/workloads/web \\\n" +
			"      -H 'Content-Type: application/merge-patch+json' -f -",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			a.method, a.path = strings.ToUpper(args[0]), args[1]
			return a.run(cmd.Context(), cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVarP(&a.file, "filename", "f", "", "send this file as the body (- for stdin)")
	cmd.Flags().StringVar(&a.identity, "identity", "", "the identity file to sign with (default $XDG_CONFIG_HOME/skiff/identity or ~/.config/skiff/identity)")
	cmd.Flags().StringVar(&a.kubeconfig, "kubeconfig", "", "kubeconfig file for the server and its certificate (default $KUBECONFIG, ~/.kube/config, or the local server's admin.kubeconfig)")
	cmd.Flags().StringVar(&a.server, "server", "", "the API server's URL (overrides the kubeconfig's)")
	a.trust.addFlags(cmd.Flags())
	cmd.Flags().StringArrayVarP(&a.headers, "header", "H", nil, "an extra request header, 'Name: value' (repeatable)")
	return cmd
}

// apiRequest is one `skiff api` request.
type apiRequest struct {
	method, path string
	file         string
	identity     string
	kubeconfig   string
	server       string
	trust        serverTrust
	headers      []string
}

func (a *apiRequest) run(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) error {
	hdr, err := a.validate()
	if err != nil {
		return err
	}
	path, err := identityPath(a.identity)
	if err != nil {
		return err
	}
	id, err := identity.LoadPersonal(path)
	if err != nil {
		return err
	}
	body, err := a.body(stdin, hdr)
	if err != nil {
		return err
	}
	base, tlsConfig, err := a.endpoint(ctx, stderr)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, a.method, strings.TrimSuffix(base.String(), "/")+a.path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s %s: %w", a.method, a.path, err)
	}
	for name, values := range hdr {
		req.Header[name] = values
	}
	if host := hdr.Get("Host"); host != "" {
		req.Host = host
	}
	if err := id.SignRequest(req, time.Now()); err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		TLSClientConfig:     tlsConfig,
		TLSHandshakeTimeout: dialTimeout,
		ForceAttemptHTTP2:   true,
	}}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		_, err := io.Copy(stdout, resp.Body)
		return err
	}
	io.Copy(stderr, resp.Body)
	if resp.StatusCode == http.StatusUnauthorized {
		return fmt.Errorf("%s %s: %s (is the key of %s trusted? it is %s)", a.method, a.path, resp.Status, path, id.UserName())
	}
	return fmt.Errorf("%s %s: %s", a.method, a.path, resp.Status)
}

// validate checks the arguments and flags, and returns the extra headers.
func (a *apiRequest) validate() (http.Header, error) {
	if !strings.HasPrefix(a.path, "/") {
		return nil, fmt.Errorf("PATH %q: want a path on the server, such as /api/v1/namespaces (a ?query may follow)", a.path)
	}
	if err := a.trust.validate(); err != nil {
		return nil, err
	}
	if (a.trust.caFile != "" || a.trust.caHash != "") && a.server == "" {
		return nil, fmt.Errorf("--certificate-authority and --ca-hash need --server")
	}
	if a.server != "" {
		if _, err := parseServerURL(a.server); err != nil {
			return nil, err
		}
	}
	hdr := http.Header{}
	for _, h := range a.headers {
		name, value, ok := strings.Cut(h, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return nil, fmt.Errorf("-H %q: want 'Name: value'", h)
		}
		if strings.HasPrefix(http.CanonicalHeaderKey(name), "X-Auth-") {
			return nil, fmt.Errorf("-H %q: the X-Auth- headers are the signature's", h)
		}
		hdr.Add(name, strings.TrimSpace(value))
	}
	return hdr, nil
}

// body reads the -f file (or stdin) and sets a default Content-Type in hdr.
func (a *apiRequest) body(stdin io.Reader, hdr http.Header) ([]byte, error) {
	if a.file == "" {
		return nil, nil
	}
	var data []byte
	var err error
	if a.file == "-" {
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(a.file)
	}
	if err != nil {
		return nil, fmt.Errorf("-f: %w", err)
	}
	if hdr.Get("Content-Type") == "" {
		hdr.Set("Content-Type", contentTypeOf(a.file))
	}
	return data, nil
}

// contentTypeOf is the Content-Type for a body read from file.
func contentTypeOf(file string) string {
	if strings.HasSuffix(file, ".yaml") || strings.HasSuffix(file, ".yml") {
		return "application/yaml"
	}
	return "application/json"
}

// endpoint is the server's URL and how to trust it: from --server and the
// CA flags, or from the kubeconfig. The kubeconfig's credentials are not
// used.
func (a *apiRequest) endpoint(ctx context.Context, stderr io.Writer) (*url.URL, *tls.Config, error) {
	if a.trust.caFile != "" || a.trust.caHash != "" {
		server, err := parseServerURL(a.server)
		if err != nil {
			return nil, nil, err
		}
		if a.trust.caHash != "" {
			pin, err := a.trust.pin()
			return server, pinnedTLSConfig(server.Hostname(), pin), err
		}
		ca, err := a.trust.certificateAuthority(ctx, server, stderr)
		if err != nil {
			return nil, nil, err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(ca)
		return server, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
	}
	cf := clientFlags{kubeconfig: a.kubeconfig, server: a.server}
	cfg, _, err := cf.config()
	if err != nil {
		return nil, nil, fmt.Errorf("%w (or pass --server with --certificate-authority or --ca-hash)", err)
	}
	server, err := parseServerURL(cfg.Host)
	if err != nil {
		return nil, nil, fmt.Errorf("kubeconfig: %w", err)
	}
	// Only the server's side of the kubeconfig: no client certificate.
	tlsConfig, err := rest.TLSConfigFor(&rest.Config{Host: cfg.Host, TLSClientConfig: rest.TLSClientConfig{
		Insecure: cfg.Insecure, ServerName: cfg.ServerName, CAFile: cfg.CAFile, CAData: cfg.CAData,
	}})
	if err != nil {
		return nil, nil, fmt.Errorf("kubeconfig: %w", err)
	}
	if tlsConfig == nil {
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return server, tlsConfig, nil
}
