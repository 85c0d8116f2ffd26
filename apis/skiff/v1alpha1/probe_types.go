package v1alpha1

import "k8s.io/apimachinery/pkg/util/intstr"

// Probe is a health check the agent runs against a container, as a
// Kubernetes Pod's: exactly one of its handlers, at a period, with
// thresholds.
type Probe struct {
	// Exec runs a command in the container; exit status 0 is success.
	// +optional
	Exec *ExecAction `json:"exec,omitempty"`
	// HTTPGet asks an HTTP endpoint of the container; a status from 200 to
	// 399 is success.
	// +optional
	HTTPGet *HTTPGetAction `json:"httpGet,omitempty"`
	// TCPSocket opens a TCP connection to the container; connecting is
	// success.
	// +optional
	TCPSocket *TCPSocketAction `json:"tcpSocket,omitempty"`
	// InitialDelaySeconds is how long after the container starts the first
	// probe runs.
	// +optional
	InitialDelaySeconds int32 `json:"initialDelaySeconds,omitempty"`
	// TimeoutSeconds is how long one probe may take; default 1.
	// +optional
	TimeoutSeconds int32 `json:"timeoutSeconds,omitempty"`
	// PeriodSeconds is how often the probe runs; default 10.
	// +optional
	PeriodSeconds int32 `json:"periodSeconds,omitempty"`
	// SuccessThreshold is how many successes in a row count after a
	// failure; default 1, and 1 for liveness and startup probes.
	// +optional
	SuccessThreshold int32 `json:"successThreshold,omitempty"`
	// FailureThreshold is how many failures in a row count; default 3.
	// +optional
	FailureThreshold int32 `json:"failureThreshold,omitempty"`
}

// ExecAction is a command run in the container, not in a shell.
type ExecAction struct {
	// Command and its arguments.
	// +listType=atomic
	Command []string `json:"command"`
}

// URIScheme is HTTP or HTTPS.
// +enum
type URIScheme string

// URI schemes of an HTTPGetAction.
const (
	URISchemeHTTP  URIScheme = "HTTP"
	URISchemeHTTPS URIScheme = "HTTPS"
)

// HTTPGetAction is an HTTP GET to the container.
type HTTPGetAction struct {
	// Path to request; default "/".
	// +optional
	Path string `json:"path,omitempty"`
	// Port: a number, or the name of one of the container's ports.
	Port intstr.IntOrString `json:"port"`
	// Host to connect to; default the Instance's address.
	// +optional
	Host string `json:"host,omitempty"`
	// Scheme is HTTP (default) or HTTPS (the certificate is not verified).
	// +optional
	Scheme URIScheme `json:"scheme,omitempty"`
	// HTTPHeaders are sent with the request.
	// +optional
	// +listType=atomic
	HTTPHeaders []HTTPHeader `json:"httpHeaders,omitempty"`
}

// HTTPHeader is one request header.
type HTTPHeader struct {
	// Name of the header.
	Name string `json:"name"`
	// Value of the header.
	Value string `json:"value"`
}

// TCPSocketAction is a TCP connection to the container.
type TCPSocketAction struct {
	// Port: a number, or the name of one of the container's ports.
	Port intstr.IntOrString `json:"port"`
	// Host to connect to; default the Instance's address.
	// +optional
	Host string `json:"host,omitempty"`
}

// Probe defaults, as Kubernetes'.
const (
	DefaultProbeTimeoutSeconds   int32 = 1
	DefaultProbePeriodSeconds    int32 = 10
	DefaultProbeSuccessThreshold int32 = 1
	DefaultProbeFailureThreshold int32 = 3
)

// setDefaultsProbe fills a probe's unset numbers and its HTTP scheme and path.
func setDefaultsProbe(p *Probe) {
	if p == nil {
		return
	}
	if p.TimeoutSeconds == 0 {
		p.TimeoutSeconds = DefaultProbeTimeoutSeconds
	}
	if p.PeriodSeconds == 0 {
		p.PeriodSeconds = DefaultProbePeriodSeconds
	}
	if p.SuccessThreshold == 0 {
		p.SuccessThreshold = DefaultProbeSuccessThreshold
	}
	if p.FailureThreshold == 0 {
		p.FailureThreshold = DefaultProbeFailureThreshold
	}
	if h := p.HTTPGet; h != nil {
		if h.Scheme == "" {
			h.Scheme = URISchemeHTTP
		}
		if h.Path == "" {
			h.Path = "/"
		}
	}
}
