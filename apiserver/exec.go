package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/conversion"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/proxy"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/klog/v2"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// execREST is an Instance's exec subresource, as pods/exec is a Pod's: it
// checks the request (the command, the container, that the Instance is
// bound and not finished), then proxies the client's connection to the
// exec endpoint of the node's agent, which upgrades it and speaks
// Kubernetes' remote command protocol with the client end to end. As
// with logs, the API server presents its own client certificate and
// accepts only the agent holding the Node's key.
//
// POST only: RBAC authorizes it as create on instances/exec. A GET (what
// WebSocket clients send) would be authorized as get, which readers have.
type execREST struct {
	instances rest.Getter
	nodes     rest.Getter
	cert      agentCert
}

var _ rest.Connecter = (*execREST)(nil)

func (r *execREST) New() runtime.Object { return &skiffv1alpha1.Instance{} }

func (r *execREST) Destroy() {}

func (r *execREST) ConnectMethods() []string { return []string{http.MethodPost} }

// NewConnectOptions are pods/exec's own options (the same query
// parameters): skiff has no Instance-specific ones to add.
func (r *execREST) NewConnectOptions() (runtime.Object, bool, string) {
	return &corev1.PodExecOptions{}, false, ""
}

func (r *execREST) Connect(ctx context.Context, name string, options runtime.Object, responder rest.Responder) (http.Handler, error) {
	opts, ok := options.(*corev1.PodExecOptions)
	if !ok {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("expected PodExecOptions, got %T", options))
	}
	if len(opts.Command) == 0 {
		return nil, apierrors.NewBadRequest("no command to run: give it as command=...&command=...")
	}
	if !opts.Stdin && !opts.Stdout && !opts.Stderr {
		return nil, apierrors.NewBadRequest("at least one of stdin, stdout and stderr must be true")
	}
	t, err := instanceAgent(ctx, r.instances, r.nodes, r.cert, name, opts.Container, execable)
	if err != nil {
		return nil, err
	}
	inst, container, node, client, base := t.inst, t.container, t.node, t.client, t.base
	loc, err := url.Parse(base + "/exec/" + url.PathEscape(inst.Namespace) + "/" + url.PathEscape(inst.Name) + "/" +
		url.PathEscape(string(inst.UID)) + "/" + url.PathEscape(container) + "?" + execQuery(opts).Encode())
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	h := proxy.NewUpgradeAwareHandler(loc, client.Transport, false, true, agentErrors{node: node.Name, responder: responder})
	return withoutSignature(h), nil
}

// execable says why no process can run in the Instance, if none can.
func execable(inst *skiffv1alpha1.Instance) error {
	if inst.Spec.NodeName == "" {
		return apierrors.NewBadRequest(fmt.Sprintf("instance %q is not bound to a node yet: it runs no containers", inst.Name))
	}
	if p := inst.Status.Phase; p == skiffv1alpha1.InstanceSucceeded || p == skiffv1alpha1.InstanceFailed {
		return apierrors.NewBadRequest(fmt.Sprintf("cannot exec into a container in a completed instance; current phase is %s", p))
	}
	return nil
}

// execQuery is the agent's query for opts (its container is in the path).
func execQuery(opts *corev1.PodExecOptions) url.Values {
	q := url.Values{"command": opts.Command}
	for name, v := range map[string]bool{"stdin": opts.Stdin, "stdout": opts.Stdout, "stderr": opts.Stderr, "tty": opts.TTY} {
		q.Set(name, strconv.FormatBool(v))
	}
	return q
}

// withoutSignature drops the client's signed-request headers before the
// request is proxied: they are for this server, not for the agent.
func withoutSignature(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for name := range r.Header {
			if strings.HasPrefix(http.CanonicalHeaderKey(name), "X-Auth-") {
				r.Header.Del(name)
			}
		}
		next.ServeHTTP(w, r)
	})
}

// agentErrors answers the proxy's errors: its own API errors (a request
// that is no upgrade) as they are, a failure to reach the agent as logs
// do (the dial's own error stays in the log).
type agentErrors struct {
	node      string
	responder rest.Responder
}

func (e agentErrors) Error(_ http.ResponseWriter, _ *http.Request, err error) {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		e.responder.Error(err)
		return
	}
	klog.InfoS("agent unreachable", "node", e.node, "err", err)
	e.responder.Error(agentUnreachable(e.node))
}

// addExecOptions registers pods/exec's options in the skiff.dev group,
// decoded from a request's query, for the exec subresource.
func addExecOptions(s *runtime.Scheme) error {
	s.AddKnownTypes(skiffv1alpha1.SchemeGroupVersion, &corev1.PodExecOptions{})
	return s.AddConversionFunc((*url.Values)(nil), (*corev1.PodExecOptions)(nil), func(a, b interface{}, _ conversion.Scope) error {
		return execOptionsFromQuery(*a.(*url.Values), b.(*corev1.PodExecOptions))
	})
}

// execOptionsFromQuery fills out from an exec request's query; a bad
// value is an error naming its parameter.
func execOptionsFromQuery(q url.Values, out *corev1.PodExecOptions) error {
	*out = corev1.PodExecOptions{Container: q.Get("container"), Command: q["command"]}
	for name, into := range map[string]*bool{"stdin": &out.Stdin, "stdout": &out.Stdout, "stderr": &out.Stderr, "tty": &out.TTY} {
		v := q.Get(name)
		if v == "" {
			continue
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%s: %q is not a boolean", name, v)
		}
		*into = b
	}
	return nil
}
