package v1alpha1

import (
	"strconv"

	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// validateProbes checks a container's three probes; liveness and startup
// probes must succeed once to count (successThreshold 1), as in Kubernetes.
func validateProbes(c *Container, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for _, p := range []struct {
		probe      *Probe
		name       string
		onceToPass bool
	}{
		{c.LivenessProbe, "livenessProbe", true},
		{c.ReadinessProbe, "readinessProbe", false},
		{c.StartupProbe, "startupProbe", true},
	} {
		if p.probe != nil {
			allErrs = append(allErrs, validateProbe(p.probe, c, p.onceToPass, fldPath.Child(p.name))...)
		}
	}
	return allErrs
}

func validateProbe(p *Probe, c *Container, onceToPass bool, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	handlers := 0
	if p.Exec != nil {
		handlers++
		if len(p.Exec.Command) == 0 {
			allErrs = append(allErrs, field.Required(fldPath.Child("exec", "command"), ""))
		}
	}
	if p.HTTPGet != nil {
		handlers++
		allErrs = append(allErrs, validateHTTPGet(p.HTTPGet, c, fldPath.Child("httpGet"))...)
	}
	if p.TCPSocket != nil {
		handlers++
		allErrs = append(allErrs, validateProbePort(p.TCPSocket.Port, c, fldPath.Child("tcpSocket", "port"))...)
	}
	if handlers != 1 {
		allErrs = append(allErrs, field.Invalid(fldPath, "", "must specify exactly one of: `exec`, `httpGet` or `tcpSocket`"))
	}
	for _, n := range []struct {
		v    int32
		name string
		min  int32
	}{
		{p.InitialDelaySeconds, "initialDelaySeconds", 0},
		{p.TimeoutSeconds, "timeoutSeconds", 1},
		{p.PeriodSeconds, "periodSeconds", 1},
		{p.SuccessThreshold, "successThreshold", 1},
		{p.FailureThreshold, "failureThreshold", 1},
	} {
		if n.v < n.min {
			allErrs = append(allErrs, field.Invalid(fldPath.Child(n.name), n.v, "must be at least "+strconv.Itoa(int(n.min))))
		}
	}
	if onceToPass && p.SuccessThreshold > 1 {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("successThreshold"), p.SuccessThreshold, "must be 1"))
	}
	return allErrs
}

func validateHTTPGet(h *HTTPGetAction, c *Container, fldPath *field.Path) field.ErrorList {
	allErrs := validateProbePort(h.Port, c, fldPath.Child("port"))
	switch h.Scheme {
	case URISchemeHTTP, URISchemeHTTPS:
	default:
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("scheme"), h.Scheme, []URIScheme{URISchemeHTTP, URISchemeHTTPS}))
	}
	if h.Path != "" && h.Path[0] != '/' {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("path"), h.Path, "must start with /"))
	}
	for i, hdr := range h.HTTPHeaders {
		for _, msg := range validation.IsHTTPHeaderName(hdr.Name) {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("httpHeaders").Index(i).Child("name"), hdr.Name, msg))
		}
	}
	return allErrs
}

// validateProbePort: a port number, or the name of one of the container's
// ports (a probe cannot reach a port by a name the container lacks).
func validateProbePort(port intstr.IntOrString, c *Container, fldPath *field.Path) field.ErrorList {
	if port.Type == intstr.Int {
		var allErrs field.ErrorList
		for _, msg := range validation.IsValidPortNum(port.IntValue()) {
			allErrs = append(allErrs, field.Invalid(fldPath, port.IntValue(), msg))
		}
		return allErrs
	}
	for _, p := range c.Ports {
		if p.Name == port.StrVal {
			return nil
		}
	}
	return field.ErrorList{field.Invalid(fldPath, port.StrVal, "must be a port number or the name of one of the container's ports")}
}
