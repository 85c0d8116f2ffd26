package apiserver

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/klog/v2"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/identity"
)

// logREST is an Instance's log subresource: it finds the Instance's node
// and streams the container log from that node's agent over HTTPS. The
// apiserver authenticates to the agent with its own client identity (whose
// key the agent fetched when it joined) and accepts only the agent whose
// key is the Node's spec.publicKey.
type logREST struct {
	instances rest.Getter
	nodes     rest.Getter
	// cert is the apiserver's client certificate towards agents.
	cert agentCert
}

var (
	_ rest.GetterWithOptions = (*logREST)(nil)
	_ rest.StorageMetadata   = (*logREST)(nil)
)

func (r *logREST) New() runtime.Object { return &skiffv1alpha1.Instance{} }

func (r *logREST) Destroy() {}

func (r *logREST) ProducesMIMETypes(string) []string { return []string{"text/plain"} }

func (r *logREST) ProducesObject(string) interface{} { return "" }

func (r *logREST) NewGetOptions() (runtime.Object, bool, string) {
	return &skiffv1alpha1.InstanceLogOptions{}, false, ""
}

func (r *logREST) Get(ctx context.Context, name string, options runtime.Object) (runtime.Object, error) {
	opts, ok := options.(*skiffv1alpha1.InstanceLogOptions)
	if !ok {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("expected InstanceLogOptions, got %T", options))
	}
	gk := skiffv1alpha1.SchemeGroupVersion.WithKind("InstanceLogOptions").GroupKind()
	if errs := validateLogOptions(opts); len(errs) > 0 {
		return nil, apierrors.NewInvalid(gk, name, errs)
	}
	t, err := instanceAgent(ctx, r.instances, r.nodes, r.cert, name, opts.Container, func(inst *skiffv1alpha1.Instance) error {
		if inst.Spec.NodeName == "" {
			return apierrors.NewBadRequest(fmt.Sprintf("instance %q is not bound to a node yet: it has no logs", name))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	inst, container, node, client, base := t.inst, t.container, t.node, t.client, t.base
	q := opts.Query()
	q.Set("container", container)
	u := base + "/containerLogs/" + url.PathEscape(inst.Namespace) + "/" + url.PathEscape(inst.Name) + "?" + q.Encode()
	return &agentStream{url: u, node: node.Name, client: client, flush: opts.Follow}, nil
}

// agentTarget is an Instance's container and the agent that runs it.
type agentTarget struct {
	inst      *skiffv1alpha1.Instance
	container string
	node      *skiffv1alpha1.Node
	client    *http.Client
	base      string
}

// instanceAgent finds Instance name's container (logContainer) and a
// client for the agent of its node, for the subresources the agents serve
// (log, exec). ready says why the Instance cannot be asked, if it cannot.
func instanceAgent(ctx context.Context, instances, nodes rest.Getter, cert agentCert, name, container string, ready func(*skiffv1alpha1.Instance) error) (agentTarget, error) {
	obj, err := instances.Get(ctx, name, &metav1.GetOptions{})
	if err != nil {
		return agentTarget{}, err
	}
	t := agentTarget{inst: obj.(*skiffv1alpha1.Instance)}
	if t.container, err = logContainer(t.inst, container); err != nil {
		return agentTarget{}, err
	}
	if err := ready(t.inst); err != nil {
		return agentTarget{}, err
	}
	obj, err = nodes.Get(ctx, t.inst.Spec.NodeName, &metav1.GetOptions{})
	if err != nil {
		return agentTarget{}, apierrors.NewServiceUnavailable(fmt.Sprintf("node %q of instance %q: %v", t.inst.Spec.NodeName, name, err))
	}
	t.node = obj.(*skiffv1alpha1.Node)
	if t.client, t.base, err = agentOf(t.node, cert); err != nil {
		return agentTarget{}, err
	}
	return t, nil
}

// agentOf returns a client for node's agent, which accepts only the agent
// holding the Node's key, and the agent's base URL. The endpoint is
// checked again here: one stored before validation held must not send the
// API server anywhere else.
func agentOf(node *skiffv1alpha1.Node, cert agentCert) (*http.Client, string, error) {
	if node.Status.AgentEndpoint == "" {
		return nil, "", apierrors.NewServiceUnavailable(fmt.Sprintf("node %q has not reported an agent endpoint", node.Name))
	}
	if err := skiffv1alpha1.CheckAgentEndpoint(node.Status.AgentEndpoint, node.Status.Addresses); err != nil {
		klog.InfoS("refusing to dial a node's agent endpoint", "node", node.Name, "endpoint", node.Status.AgentEndpoint, "err", err)
		return nil, "", agentUnreachable(node.Name)
	}
	pub, err := identity.ParsePublicKey(node.Spec.PublicKey)
	if err != nil {
		return nil, "", apierrors.NewServiceUnavailable(fmt.Sprintf("node %q: %v", node.Name, err))
	}
	return agentClient(pub, cert), "https://" + node.Status.AgentEndpoint, nil
}

// agentUnreachable is all a caller learns when the agent cannot be
// reached: the dial's own error (refused, timed out, a TLS failure) would
// tell a node that sets its endpoint what lies at any address.
func agentUnreachable(node string) error {
	return apierrors.NewServiceUnavailable(fmt.Sprintf("the agent of node %q is unreachable", node))
}

// agentCert returns the API server's current client certificate towards
// agents (renewed in a file).
type agentCert = func(*tls.CertificateRequestInfo) (*tls.Certificate, error)

// agentClient accepts only the agent holding key pub, and presents cert.
func agentClient(pub ed25519.PublicKey, cert agentCert) *http.Client {
	return &http.Client{Transport: &http.Transport{
		// One connection per log request: a transport made per request
		// must not keep idle connections it will never reuse.
		DisableKeepAlives: true,
		// An unreachable node fails in seconds, not the kernel's minutes.
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		TLSClientConfig: &tls.Config{
			GetClientCertificate: cert,
			InsecureSkipVerify:   true, // replaced by the key check below
			VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
				if len(raw) == 0 {
					return errors.New("the agent sent no certificate")
				}
				cert, err := x509.ParseCertificate(raw[0])
				if err != nil {
					return err
				}
				got, ok := cert.PublicKey.(ed25519.PublicKey)
				if !ok || !bytes.Equal(got, pub) {
					return errors.New("the agent's key is not the Node's spec.publicKey")
				}
				return nil
			},
		},
	}}
}

// logContainer picks the container to read: the one named, or the only one.
func logContainer(inst *skiffv1alpha1.Instance, name string) (string, error) {
	for _, c := range inst.Spec.InitContainers {
		if name != "" && c.Name == name {
			return name, nil
		}
	}
	names := make([]string, 0, len(inst.Spec.Containers))
	for _, c := range inst.Spec.Containers {
		if c.Name == name {
			return name, nil
		}
		names = append(names, c.Name)
	}
	if name == "" && len(names) == 1 {
		return names[0], nil
	}
	for _, c := range inst.Spec.InitContainers {
		names = append(names, c.Name)
	}
	if name == "" {
		return "", apierrors.NewBadRequest(fmt.Sprintf("a container name must be specified for instance %s, choose one of: [%s]", inst.Name, strings.Join(names, " ")))
	}
	return "", apierrors.NewBadRequest(fmt.Sprintf("container %s is not valid for instance %s, choose one of: [%s]", name, inst.Name, strings.Join(names, " ")))
}

// agentStream is the log as the agent serves it.
type agentStream struct {
	url    string
	node   string
	client *http.Client
	flush  bool
}

var _ rest.ResourceStreamer = (*agentStream)(nil)

func (s *agentStream) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

func (s *agentStream) DeepCopyObject() runtime.Object {
	c := *s
	return &c
}

func (s *agentStream) InputStream(ctx context.Context, _, _ string) (io.ReadCloser, bool, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, false, "", err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, false, "", ctx.Err()
		}
		klog.InfoS("agent unreachable", "node", s.node, "err", err)
		return nil, false, "", agentUnreachable(s.node)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		text := strings.TrimSpace(string(msg))
		if resp.StatusCode == http.StatusNotFound {
			return nil, false, "", apierrors.NewNotFound(skiffv1alpha1.Resource("instances/log"), text)
		}
		return nil, false, "", apierrors.NewGenericServerResponse(resp.StatusCode, "get", skiffv1alpha1.Resource("instances"), "", text, 0, false)
	}
	return resp.Body, s.flush, "text/plain", nil
}

func validateLogOptions(o *skiffv1alpha1.InstanceLogOptions) field.ErrorList {
	var errs field.ErrorList
	if o.SinceSeconds != nil && *o.SinceSeconds < 1 {
		errs = append(errs, field.Invalid(field.NewPath("sinceSeconds"), *o.SinceSeconds, "must be at least 1"))
	}
	if o.SinceSeconds != nil && o.SinceTime != nil {
		errs = append(errs, field.Forbidden(field.NewPath("sinceTime"), "at most one of sinceSeconds and sinceTime may be set"))
	}
	if o.TailLines != nil && *o.TailLines < 0 {
		errs = append(errs, field.Invalid(field.NewPath("tailLines"), *o.TailLines, "must not be negative"))
	}
	if o.LimitBytes != nil && *o.LimitBytes < 1 {
		errs = append(errs, field.Invalid(field.NewPath("limitBytes"), *o.LimitBytes, "must be at least 1"))
	}
	return errs
}
