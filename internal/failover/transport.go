package failover

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/rest"

	"skiff.dev/skiff/identity"
)

// DialTimeout bounds a connection attempt to one server (client-go's is
// 30 s): a server whose machine is off costs a client this long before it
// moves on to the next.
const DialTimeout = 5 * time.Second

// Apply makes the clients of cfg use s: cfg.Host becomes the current
// server, each request goes to whichever is current then (Wrap), the
// serving certificate is verified by identity.ServingName (the servers
// share one, which names only the first server's address), and a dial
// gives up after DialTimeout unless cfg.Dial is set. cfg's CA data or
// file must hold that certificate.
func (s *Servers) Apply(cfg *rest.Config) {
	cfg.Host = s.Current()
	cfg.TLSClientConfig.ServerName = identity.ServingName
	if cfg.Dial == nil {
		cfg.Dial = (&net.Dialer{Timeout: DialTimeout, KeepAlive: 30 * time.Second}).DialContext
	}
	cfg.Wrap(s.Wrap)
}

// Wrap returns a RoundTripper (for rest.Config.WrapTransport) that sends
// each request through rt to the current server, whatever the request's
// URL names. A server that cannot be reached (the dial failed: nothing
// was sent) is left for the next, and the request is sent there, each
// server tried at most once; a request with a body that cannot be read
// again (no GetBody) is not resent. A request that fails once it may have
// been sent (connection reset, EOF, a lost HTTP/2 connection) is not
// resent, since the server may have acted on it: its server is left for
// the next request, and the error returned for the caller to retry (as
// client-go and controllers do). A request the caller cancelled leaves
// the server current.
func (s *Servers) Wrap(rt http.RoundTripper) http.RoundTripper {
	return &transport{servers: s, next: rt}
}

type transport struct {
	servers *Servers
	next    http.RoundTripper
}

var _ utilnet.RoundTripperWrapper = (*transport)(nil)

// WrappedRoundTripper lets client-go reach the transport beneath: its TLS
// configuration (exec, port-forward), CloseIdleConnections.
func (t *transport) WrappedRoundTripper() http.RoundTripper { return t.next }

// CloseIdleConnections closes the idle connections beneath.
func (t *transport) CloseIdleConnections() { utilnet.CloseIdleConnectionsFor(t.next) }

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var errs []error
	for _, server := range t.servers.fromCurrent() {
		attempt, err := retarget(req, server, len(errs) > 0)
		if err != nil {
			errs = append(errs, err)
			break
		}
		resp, err := t.next.RoundTrip(attempt)
		switch {
		case err == nil:
			if serverTrouble(resp.StatusCode) {
				// Answered, and not resent; but the next request goes to
				// another server (this one's etcd may have lost its quorum).
				t.servers.Failed(server)
			}
			return resp, nil
		case req.Context().Err() != nil:
			return nil, err // the caller gave up: nothing said about the server
		case !dialFailed(err):
			t.servers.Failed(server)
			return nil, err
		}
		t.servers.Failed(server)
		errs = append(errs, err)
	}
	if len(errs) == 1 {
		return nil, errs[0]
	}
	return nil, fmt.Errorf("no API server could be reached: %w", errors.Join(errs...))
}

// retarget is req sent to server; a retry (again) gets a fresh body.
func retarget(req *http.Request, server string, again bool) (*http.Request, error) {
	u, err := url.Parse(server)
	if err != nil {
		return nil, fmt.Errorf("API server %q: %w", server, err)
	}
	r := req.Clone(req.Context())
	r.URL.Scheme, r.URL.Host = u.Scheme, u.Host
	r.Host = "" // the Host header names the server dialled
	if !again || req.Body == nil || req.Body == http.NoBody {
		return r, nil
	}
	if req.GetBody == nil {
		return nil, fmt.Errorf("%s %s: not resent to %s: its body cannot be read again", req.Method, req.URL.Path, server)
	}
	if r.Body, err = req.GetBody(); err != nil {
		return nil, fmt.Errorf("%s %s: not resent to %s: %w", req.Method, req.URL.Path, server, err)
	}
	return r, nil
}

// dialFailed reports whether err says no connection was made, so the
// request was not sent: refused, no route, a dial timeout, a name that
// does not resolve.
func dialFailed(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// serverTrouble says whether a response's status is the server's own
// trouble rather than the request's: a server whose etcd lost its quorum
// answers 500 (etcd timed out), 503 or 504.
func serverTrouble(code int) bool {
	return code == http.StatusInternalServerError || code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout
}
