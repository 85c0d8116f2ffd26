package v1alpha1

import (
	"path"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// fileModeErrorMsg is Kubernetes' message for a bad mode or defaultMode.
const fileModeErrorMsg = "must be a number between 0 and 0777 (octal), both inclusive"

// maxFileMode is the largest permission-bits value a mode may have.
const maxFileMode int32 = 0o777

// validateVolumes checks the Instance's volumes, as Kubernetes does a
// Pod's: unique DNS label names and exactly one well-formed source each.
// fldPath is spec.volumes.
func validateVolumes(volumes []Volume, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	names := sets.New[string]()
	for i := range volumes {
		v, idxPath := &volumes[i], fldPath.Index(i)
		namePath := idxPath.Child("name")
		if v.Name == "" {
			allErrs = append(allErrs, field.Required(namePath, ""))
		} else {
			for _, msg := range validation.IsDNS1123Label(v.Name) {
				allErrs = append(allErrs, field.Invalid(namePath, v.Name, msg))
			}
			if names.Has(v.Name) {
				allErrs = append(allErrs, field.Duplicate(namePath, v.Name))
			}
			names.Insert(v.Name)
		}
		allErrs = append(allErrs, validateVolumeSource(&v.VolumeSource, idxPath)...)
	}
	return allErrs
}

// validateVolumeSource requires exactly one source, in Kubernetes' order
// (emptyDir, hostPath, secret, configMap): the first one set is checked and
// every later one is refused at its own path. fldPath is the volume's.
func validateVolumeSource(s *VolumeSource, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	sources := []struct {
		name     string
		set      bool
		validate func(*field.Path) field.ErrorList
	}{
		{"emptyDir", s.EmptyDir != nil, func(p *field.Path) field.ErrorList { return validateEmptyDir(s.EmptyDir, p) }},
		{"hostPath", s.HostPath != nil, func(p *field.Path) field.ErrorList { return validateHostPath(s.HostPath, p) }},
		{"secret", s.Secret != nil, func(p *field.Path) field.ErrorList {
			return validateProjection(s.Secret.Items, s.Secret.DefaultMode, s.Secret.SecretName, "secretName", p)
		}},
		{"configMap", s.ConfigMap != nil, func(p *field.Path) field.ErrorList {
			return validateProjection(s.ConfigMap.Items, s.ConfigMap.DefaultMode, s.ConfigMap.Name, "name", p)
		}},
	}
	found := false
	for _, src := range sources {
		switch {
		case !src.set:
		case found:
			allErrs = append(allErrs, field.Forbidden(fldPath.Child(src.name), "may not specify more than 1 volume type"))
		default:
			found = true
			allErrs = append(allErrs, src.validate(fldPath.Child(src.name))...)
		}
	}
	if !found {
		allErrs = append(allErrs, field.Required(fldPath, "must specify a volume type"))
	}
	return allErrs
}

func validateEmptyDir(e *EmptyDirVolumeSource, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	media := []StorageMedium{StorageMediumDefault, StorageMediumMemory}
	if !slices.Contains(media, e.Medium) {
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("medium"), e.Medium, media))
	}
	// Kubernetes refuses a negative sizeLimit as Forbidden, not Invalid.
	if q := e.SizeLimit; q != nil && q.Cmp(resource.Quantity{}) < 0 {
		allErrs = append(allErrs, field.Forbidden(fldPath.Child("sizeLimit"), "must be greater than or equal to 0"))
	}
	return allErrs
}

// validateHostPath requires an absolute path with no ".." element (the
// agent bind-mounts it as written) and a known type.
func validateHostPath(h *HostPathVolumeSource, fldPath *field.Path) field.ErrorList {
	pathPath := fldPath.Child("path")
	if h.Path == "" {
		return field.ErrorList{field.Required(pathPath, "")}
	}
	var allErrs field.ErrorList
	if !path.IsAbs(h.Path) {
		allErrs = append(allErrs, field.Invalid(pathPath, h.Path, "must be an absolute path"))
	}
	allErrs = append(allErrs, validatePathNoBacksteps(h.Path, pathPath)...)
	if t := h.Type; t != nil {
		types := []HostPathType{HostPathUnset, HostPathDirectoryOrCreate, HostPathDirectory, HostPathFileOrCreate, HostPathFile}
		if !slices.Contains(types, *t) {
			allErrs = append(allErrs, field.NotSupported(fldPath.Child("type"), *t, types))
		}
	}
	return allErrs
}

// validateProjection checks a configMap or secret volume: the object's
// name (at nameField), the default mode, and the items, whose keys are
// valid keys and whose paths are distinct relative paths inside the volume.
func validateProjection(items []KeyToPath, defaultMode *int32, name, nameField string, fldPath *field.Path) field.ErrorList {
	allErrs := validateRefName(name, fldPath.Child(nameField))
	allErrs = append(allErrs, validateFileMode(defaultMode, fldPath.Child("defaultMode"))...)
	paths := sets.New[string]()
	for i, item := range items {
		idxPath := fldPath.Child("items").Index(i)
		keyPath, pathPath := idxPath.Child("key"), idxPath.Child("path")
		if item.Key == "" {
			allErrs = append(allErrs, field.Required(keyPath, ""))
		} else {
			for _, msg := range validation.IsConfigMapKey(item.Key) {
				allErrs = append(allErrs, field.Invalid(keyPath, item.Key, msg))
			}
		}
		if item.Path == "" {
			allErrs = append(allErrs, field.Required(pathPath, ""))
		} else {
			allErrs = append(allErrs, validateLocalNonReservedPath(item.Path, pathPath)...)
			// Two items writing one file: which one wins would be up to the agent.
			if clean := path.Clean(item.Path); paths.Has(clean) {
				allErrs = append(allErrs, field.Duplicate(pathPath, item.Path))
			} else {
				paths.Insert(clean)
			}
		}
		allErrs = append(allErrs, validateFileMode(item.Mode, idxPath.Child("mode"))...)
	}
	return allErrs
}

func validateFileMode(mode *int32, fldPath *field.Path) field.ErrorList {
	if mode != nil && (*mode < 0 || *mode > maxFileMode) {
		return field.ErrorList{field.Invalid(fldPath, *mode, fileModeErrorMsg)}
	}
	return nil
}

// validateVolumeMounts checks a container's mounts: each names one of the
// Instance's volumes (volumes holds their names), at an absolute path
// without ':' that no other mount of the container uses, with an optional
// relative subPath that cannot climb out of the volume.
func validateVolumeMounts(mounts []VolumeMount, volumes sets.Set[string], fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	mountPaths := sets.New[string]()
	for i, m := range mounts {
		idxPath := fldPath.Index(i)
		namePath, mountPath := idxPath.Child("name"), idxPath.Child("mountPath")
		switch {
		case m.Name == "":
			allErrs = append(allErrs, field.Required(namePath, ""))
		case !volumes.Has(m.Name):
			allErrs = append(allErrs, field.NotFound(namePath, m.Name))
		}
		if m.MountPath == "" {
			allErrs = append(allErrs, field.Required(mountPath, ""))
		} else {
			if !path.IsAbs(m.MountPath) {
				allErrs = append(allErrs, field.Invalid(mountPath, m.MountPath, "must be an absolute path"))
			}
			if strings.Contains(m.MountPath, ":") {
				allErrs = append(allErrs, field.Invalid(mountPath, m.MountPath, "must not contain ':'"))
			}
			// "/data" and "/data/" are one mount point.
			if clean := path.Clean(m.MountPath); mountPaths.Has(clean) {
				allErrs = append(allErrs, field.Duplicate(mountPath, m.MountPath))
			} else {
				mountPaths.Insert(clean)
			}
		}
		if m.SubPath != "" {
			allErrs = append(allErrs, validateLocalDescendingPath(m.SubPath, idxPath.Child("subPath"))...)
		}
	}
	return allErrs
}

// volumeNames is the set of the spec's volume names, which mounts refer to.
func volumeNames(volumes []Volume) sets.Set[string] {
	names := sets.New[string]()
	for _, v := range volumes {
		if v.Name != "" {
			names.Insert(v.Name)
		}
	}
	return names
}

// validateLocalDescendingPath requires a relative path with no ".."
// element: one that stays inside the directory it is joined to.
func validateLocalDescendingPath(p string, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if path.IsAbs(p) {
		allErrs = append(allErrs, field.Invalid(fldPath, p, "must be a relative path"))
	}
	return append(allErrs, validatePathNoBacksteps(p, fldPath)...)
}

// validateLocalNonReservedPath adds to validateLocalDescendingPath that
// the path does not start with "..": such names are reserved for the
// projection's own bookkeeping (the kubelet's ..data and its timestamped
// ..-directories), as in Kubernetes.
func validateLocalNonReservedPath(p string, fldPath *field.Path) field.ErrorList {
	allErrs := validateLocalDescendingPath(p, fldPath)
	// A leading ".." element is already reported.
	if strings.HasPrefix(p, "..") && !strings.HasPrefix(p, "../") && p != ".." {
		allErrs = append(allErrs, field.Invalid(fldPath, p, "must not start with '..'"))
	}
	return allErrs
}

// validatePathNoBacksteps refuses a ".." element, once however many there are.
func validatePathNoBacksteps(p string, fldPath *field.Path) field.ErrorList {
	for _, elem := range strings.Split(p, "/") {
		if elem == ".." {
			return field.ErrorList{field.Invalid(fldPath, p, "must not contain '..'")}
		}
	}
	return nil
}
