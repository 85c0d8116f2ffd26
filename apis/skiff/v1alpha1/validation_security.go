package v1alpha1

import (
	"path"
	"regexp"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// capabilityName: a Linux capability, with or without its CAP_ prefix, or ALL.
var capabilityName = regexp.MustCompile(`^[A-Z][A-Z_]*$`)

func validateInstanceSecurityContext(sc *InstanceSecurityContext, fldPath *field.Path) field.ErrorList {
	if sc == nil {
		return nil
	}
	allErrs := validateIDs(sc.RunAsUser, sc.RunAsGroup, fldPath)
	if g := sc.FSGroup; g != nil && (*g < 0 || *g > maxID) {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("fsGroup"), *g, idRangeMsg))
	}
	return append(allErrs, validateSeccomp(sc.SeccompProfile, fldPath.Child("seccompProfile"))...)
}

func validateSecurityContext(sc *SecurityContext, fldPath *field.Path) field.ErrorList {
	if sc == nil {
		return nil
	}
	allErrs := validateIDs(sc.RunAsUser, sc.RunAsGroup, fldPath)
	allErrs = append(allErrs, validateSeccomp(sc.SeccompProfile, fldPath.Child("seccompProfile"))...)
	if sc.Capabilities != nil {
		for _, list := range []struct {
			name string
			caps []Capability
		}{{"add", sc.Capabilities.Add}, {"drop", sc.Capabilities.Drop}} {
			for i, c := range list.caps {
				if !capabilityName.MatchString(string(c)) {
					allErrs = append(allErrs, field.Invalid(fldPath.Child("capabilities", list.name).Index(i), c, "must be a capability name such as NET_ADMIN (CAP_ may be left out), or ALL"))
				}
			}
		}
	}
	if isTrue(sc.Privileged) && sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("allowPrivilegeEscalation"), false, "cannot set allowPrivilegeEscalation to false and privileged to true"))
	}
	return allErrs
}

// maxID is the largest user or group id Kubernetes allows (math.MaxInt32),
// and idRangeMsg says so.
const (
	maxID      = 2147483647
	idRangeMsg = "must be between 0 and 2147483647"
)

func validateIDs(user, group *int64, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for name, id := range map[string]*int64{"runAsUser": user, "runAsGroup": group} {
		if id != nil && (*id < 0 || *id > maxID) {
			allErrs = append(allErrs, field.Invalid(fldPath.Child(name), *id, idRangeMsg))
		}
	}
	return allErrs
}

func validateSeccomp(p *SeccompProfile, fldPath *field.Path) field.ErrorList {
	if p == nil {
		return nil
	}
	switch p.Type {
	case SeccompProfileTypeRuntimeDefault, SeccompProfileTypeUnconfined:
		return nil
	}
	return field.ErrorList{field.NotSupported(fldPath.Child("type"), p.Type, []SeccompProfileType{SeccompProfileTypeRuntimeDefault, SeccompProfileTypeUnconfined})}
}

// validateLifecycle: a preStop hook is exactly one handler.
func validateLifecycle(c *Container, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if l := c.Lifecycle; l != nil && l.PreStop != nil {
		p := fldPath.Child("lifecycle", "preStop")
		h := l.PreStop
		switch {
		case (h.Exec == nil) == (h.HTTPGet == nil):
			allErrs = append(allErrs, field.Invalid(p, "", "must specify exactly one of: `exec` or `httpGet`"))
		case h.Exec != nil && len(h.Exec.Command) == 0:
			allErrs = append(allErrs, field.Required(p.Child("exec", "command"), ""))
		case h.HTTPGet != nil:
			allErrs = append(allErrs, validateHTTPGet(h.HTTPGet, c, p.Child("httpGet"))...)
		}
	}
	if m := c.TerminationMessagePath; m == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("terminationMessagePath"), "it defaults to "+DefaultTerminationMessagePath))
	} else if !path.IsAbs(m) || path.Clean(m) != m {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("terminationMessagePath"), m, "must be a clean absolute path"))
	}
	return allErrs
}

func isTrue(b *bool) bool { return b != nil && *b }
