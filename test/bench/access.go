package main

import (
	"fmt"
	"io"
	"net/http"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"skiff.dev/skiff/identity"
)

// accessRates measures creates/s by a person's key bound to skiff:operator
// (so RBAC decides each request, where the admin is allowed before RBAC),
// over a client certificate and over signed requests.
func accessRates(admin *client, kubeconfig string, n, workers int) ([]result, error) {
	id, err := identity.New()
	if err != nil {
		return nil, err
	}
	user := identity.KeyUserName(id.Public())
	binding := fmt.Sprintf(`{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRoleBinding","metadata":{"name":"bench-operator"},"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"skiff:operator"},"subjects":[{"kind":"User","apiGroup":"rbac.authorization.k8s.io","name":%q}]}`, user)
	if err := admin.post(admin.host+"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", "bench-operator", []byte(binding)); err != nil {
		return nil, err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	certPEM, err := id.ClientCertificate("bench-operator", time.Now())
	if err != nil {
		return nil, err
	}
	keyPEM, err := id.KeyPEM()
	if err != nil {
		return nil, err
	}
	withCert := rest.AnonymousClientConfig(cfg)
	withCert.CertData, withCert.KeyData = certPEM, keyPEM
	hc, err := rest.HTTPClientFor(withCert)
	if err != nil {
		return nil, err
	}
	op := &client{host: cfg.Host, base: admin.base, hc: hc}
	if err := waitAuthenticated(op); err != nil {
		return nil, err
	}
	// The admin again, at the same size of the store, for comparison.
	adminRate, err := createNamed(admin, "admin-again", n, workers)
	if err != nil {
		return nil, err
	}
	certRate, err := createNamed(op, "op-cert", n, workers)
	if err != nil {
		return nil, err
	}
	anon, err := rest.HTTPClientFor(rest.AnonymousClientConfig(cfg))
	if err != nil {
		return nil, err
	}
	signer := &client{host: cfg.Host, base: admin.base, hc: &http.Client{Transport: signingTransport{id: id, next: anon.Transport}}}
	signedRate, err := createNamed(signer, "op-signed", n, workers)
	if err != nil {
		return nil, err
	}
	return []result{
		{fmt.Sprintf("creates/s, %d clients, the admin again (allowed before RBAC), after the above", workers), fmt.Sprintf("%.0f", adminRate), ""},
		{fmt.Sprintf("creates/s, %d clients, a key bound to skiff:operator (RBAC decides), client certificate", workers), fmt.Sprintf("%.0f", certRate), "not below the admin's"},
		{fmt.Sprintf("creates/s, %d clients, the same key, signed requests", workers), fmt.Sprintf("%.0f", signedRate), ""},
	}, nil
}

func createNamed(c *client, prefix string, n, workers int) (float64, error) {
	t0 := time.Now()
	err := inParallel(n, workers, func(i int) error { return c.create(fmt.Sprintf("%s-%d", prefix, i)) })
	return float64(n) / time.Since(t0).Seconds(), err
}

// waitAuthenticated waits until the server's mirror of the bindings knows
// the key (milliseconds).
func waitAuthenticated(c *client) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := c.hc.Get(c.base + "?limit=1")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the operator key is not let in after 10s: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// signingTransport signs each request with id.
type signingTransport struct {
	id   *identity.Identity
	next http.RoundTripper
}

func (t signingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	if req.Body != nil && req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		req.Body = body
	}
	if err := t.id.SignRequest(req, time.Now()); err != nil {
		return nil, err
	}
	return t.next.RoundTrip(req)
}
