package v1alpha1

import (
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ValidateInstance checks an Instance on create: metadata, the template
// part of its spec, and the node it is bound to, if any.
func ValidateInstance(i *Instance) field.ErrorList {
	allErrs := apivalidation.ValidateObjectMeta(&i.ObjectMeta, true, apivalidation.NameIsDNSLabel, field.NewPath("metadata"))
	specPath := field.NewPath("spec")
	allErrs = append(allErrs, ValidateInstanceTemplateSpec(&i.Spec.InstanceTemplateSpec, specPath)...)
	if i.Spec.NodeName != "" {
		// Node names are host names: DNS subdomains, not labels.
		for _, msg := range apivalidation.NameIsDNSSubdomain(i.Spec.NodeName, false) {
			allErrs = append(allErrs, field.Invalid(specPath.Child("nodeName"), i.Spec.NodeName, msg))
		}
	}
	return allErrs
}

// ValidateInstanceUpdate checks an Instance update. An Instance is a
// running thing on a node: its spec is fixed once created, except that an
// unbound Instance may be bound and tolerations may be added (as for a
// Kubernetes Pod).
func ValidateInstanceUpdate(newI, oldI *Instance) field.ErrorList {
	allErrs := apivalidation.ValidateObjectMetaUpdate(&newI.ObjectMeta, &oldI.ObjectMeta, field.NewPath("metadata"))
	allErrs = append(allErrs, ValidateInstance(newI)...)
	return append(allErrs, validateInstanceSpecUpdate(&newI.Spec, &oldI.Spec, field.NewPath("spec"))...)
}

func validateInstanceSpecUpdate(newSpec, oldSpec *InstanceSpec, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if !apiequality.Semantic.DeepEqual(newSpec.Containers, oldSpec.Containers) {
		allErrs = append(allErrs, field.Forbidden(fldPath.Child("containers"), "field is immutable"))
	}
	// Volumes are made when the Instance starts on its node and kept until
	// it ends: a change would reach neither them nor the mounts.
	if !apiequality.Semantic.DeepEqual(newSpec.Volumes, oldSpec.Volumes) {
		allErrs = append(allErrs, field.Forbidden(fldPath.Child("volumes"), "field is immutable"))
	}
	if oldSpec.NodeName != "" && newSpec.NodeName != oldSpec.NodeName {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("nodeName"), newSpec.NodeName, "field is immutable once set"))
	}
	allErrs = append(allErrs, validateTolerationsUpdate(newSpec.Tolerations, oldSpec.Tolerations, fldPath.Child("tolerations"))...)
	if !apiequality.Semantic.DeepEqual(mutableFieldsCleared(newSpec), mutableFieldsCleared(oldSpec)) {
		allErrs = append(allErrs, field.Forbidden(fldPath, "instance updates may not change fields other than spec.nodeName (when unset) and spec.tolerations (only additions)"))
	}
	return allErrs
}

// mutableFieldsCleared returns a template spec without the fields checked
// on their own (containers, volumes, tolerations), so that a change to
// anything else shows as a difference, and a change to those is reported
// once, at its path.
func mutableFieldsCleared(spec *InstanceSpec) InstanceTemplateSpec {
	t := *spec.InstanceTemplateSpec.DeepCopy()
	t.Containers = nil
	t.Volumes = nil
	t.Tolerations = nil
	return t
}

// validateTolerationsUpdate allows additions only: a toleration the
// scheduler relied on when it placed the Instance must stay.
func validateTolerationsUpdate(newTols, oldTols []Toleration, fldPath *field.Path) field.ErrorList {
	for _, old := range oldTols {
		if !containsToleration(newTols, old) {
			return field.ErrorList{field.Forbidden(fldPath, "existing tolerations may not be removed or changed; only additions are allowed")}
		}
	}
	return nil
}

func containsToleration(tols []Toleration, t Toleration) bool {
	for _, candidate := range tols {
		if apiequality.Semantic.DeepEqual(candidate, t) {
			return true
		}
	}
	return false
}

// ValidateInstanceStatusUpdate checks a write to an Instance's status
// subresource. The QoS class is decided once, at admission: the agent sized
// the cgroups by it.
func ValidateInstanceStatusUpdate(newI, oldI *Instance) field.ErrorList {
	allErrs := apivalidation.ValidateObjectMetaUpdate(&newI.ObjectMeta, &oldI.ObjectMeta, field.NewPath("metadata"))
	statusPath := field.NewPath("status")
	s := &newI.Status
	phases := []InstancePhase{InstancePending, InstanceRunning, InstanceSucceeded, InstanceFailed, InstanceUnknown}
	allErrs = append(allErrs, validateOptionalEnum(s.Phase, phases, statusPath.Child("phase"))...)
	allErrs = append(allErrs, metav1validation.ValidateConditions(s.Conditions, statusPath.Child("conditions"))...)
	for i, cs := range s.ContainerStatuses {
		allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(cs.RestartCount), statusPath.Child("containerStatuses").Index(i).Child("restartCount"))...)
	}
	for _, ip := range []struct {
		name, value string
	}{{"hostIP", s.HostIP}, {"instanceIP", s.InstanceIP}} {
		if _, err := netip.ParseAddr(ip.value); ip.value != "" && err != nil {
			allErrs = append(allErrs, field.Invalid(statusPath.Child(ip.name), ip.value, "must be an IP address"))
		}
	}
	qosPath := statusPath.Child("qosClass")
	allErrs = append(allErrs, validateOptionalEnum(s.QOSClass, []QOSClass{QOSGuaranteed, QOSBurstable, QOSBestEffort}, qosPath)...)
	if oldI.Status.QOSClass != "" && s.QOSClass != oldI.Status.QOSClass {
		allErrs = append(allErrs, field.Invalid(qosPath, s.QOSClass, "field is immutable once set"))
	}
	return allErrs
}

// ValidateInstanceTemplateSpec checks what a Workload stamps into each
// Instance (and what an Instance carries besides its node): containers,
// volumes, restart policy and placement rules. fldPath is the spec's own path.
func ValidateInstanceTemplateSpec(spec *InstanceTemplateSpec, fldPath *field.Path) field.ErrorList {
	allErrs := validateVolumes(spec.Volumes, fldPath.Child("volumes"))
	volumes := volumeNames(spec.Volumes)
	allErrs = append(allErrs, validateContainers(spec.Containers, volumes, fldPath.Child("containers"))...)
	allErrs = append(allErrs, validateInitContainers(spec, volumes, fldPath.Child("initContainers"))...)
	allErrs = append(allErrs, validateInstanceSecurityContext(spec.SecurityContext, fldPath.Child("securityContext"))...)
	for i, ref := range spec.ImagePullSecrets {
		allErrs = append(allErrs, validateRefName(ref.Name, fldPath.Child("imagePullSecrets").Index(i).Child("name"))...)
	}
	allErrs = append(allErrs, validateRestartPolicy(spec.RestartPolicy, fldPath.Child("restartPolicy"))...)
	allErrs = append(allErrs, validatePlacement(spec, fldPath)...)
	allErrs = append(allErrs, validateHostPorts(spec, fldPath)...)
	if g := spec.TerminationGracePeriodSeconds; g != nil {
		allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(*g, fldPath.Child("terminationGracePeriodSeconds"))...)
	}
	return allErrs
}

func validateRestartPolicy(p RestartPolicy, fldPath *field.Path) field.ErrorList {
	switch p {
	case RestartPolicyAlways, RestartPolicyOnFailure, RestartPolicyNever:
		return nil
	case "":
		return field.ErrorList{field.Required(fldPath, "restart policy is required (it defaults to Always)")}
	default:
		return field.ErrorList{field.NotSupported(fldPath, p, []RestartPolicy{RestartPolicyAlways, RestartPolicyOnFailure, RestartPolicyNever})}
	}
}

// MaxContainers is how many containers an Instance may have: each is a
// runtime container, a cgroup and a log on its node.
const MaxContainers = 64

// validateContainers requires at least one container, with unique DNS label
// names: the agent names cgroups, logs and runtime containers after them.
// volumes are the names of the Instance's volumes.
func validateContainers(containers []Container, volumes sets.Set[string], fldPath *field.Path) field.ErrorList {
	if len(containers) == 0 {
		return field.ErrorList{field.Required(fldPath, "at least one container is required")}
	}
	if len(containers) > MaxContainers {
		return field.ErrorList{field.TooMany(fldPath, len(containers), MaxContainers)}
	}
	var allErrs field.ErrorList
	names := sets.New[string]()
	for i := range containers {
		c, idxPath := &containers[i], fldPath.Index(i)
		allErrs = append(allErrs, validateUniqueDNSLabel(c.Name, names, idxPath.Child("name"))...)
		allErrs = append(allErrs, validateContainer(c, volumes, idxPath)...)
	}
	return allErrs
}

// validateInitContainers checks each init container as a container, with
// names unique among the containers too, and no probes (an init container
// runs to completion; readiness and liveness mean nothing for it).
func validateInitContainers(spec *InstanceTemplateSpec, volumes sets.Set[string], fldPath *field.Path) field.ErrorList {
	if len(spec.InitContainers)+len(spec.Containers) > MaxContainers {
		return field.ErrorList{field.TooMany(fldPath, len(spec.InitContainers), MaxContainers-len(spec.Containers))}
	}
	var allErrs field.ErrorList
	names := sets.New[string]()
	for _, c := range spec.Containers {
		names.Insert(c.Name)
	}
	for i := range spec.InitContainers {
		c, idxPath := &spec.InitContainers[i], fldPath.Index(i)
		allErrs = append(allErrs, validateUniqueDNSLabel(c.Name, names, idxPath.Child("name"))...)
		allErrs = append(allErrs, validateContainer(c, volumes, idxPath)...)
		for name, p := range map[string]*Probe{"livenessProbe": c.LivenessProbe, "readinessProbe": c.ReadinessProbe, "startupProbe": c.StartupProbe} {
			if p != nil {
				allErrs = append(allErrs, field.Forbidden(idxPath.Child(name), "may not be set for init containers"))
			}
		}
		if c.Lifecycle != nil {
			allErrs = append(allErrs, field.Forbidden(idxPath.Child("lifecycle"), "may not be set for init containers"))
		}
	}
	return allErrs
}

// validateUniqueDNSLabel requires name to be a DNS label not yet in seen,
// and records it.
func validateUniqueDNSLabel(name string, seen sets.Set[string], fldPath *field.Path) field.ErrorList {
	if name == "" {
		return field.ErrorList{field.Required(fldPath, "a container name is required")}
	}
	var allErrs field.ErrorList
	for _, msg := range validation.IsDNS1123Label(name) {
		allErrs = append(allErrs, field.Invalid(fldPath, name, msg))
	}
	if seen.Has(name) {
		allErrs = append(allErrs, field.Duplicate(fldPath, name))
	}
	seen.Insert(name)
	return allErrs
}

func validateContainer(c *Container, volumes sets.Set[string], fldPath *field.Path) field.ErrorList {
	allErrs := validateImage(c.Image, fldPath.Child("image"))
	switch c.ImagePullPolicy {
	case PullAlways, PullIfNotPresent, PullNever:
	case "":
		allErrs = append(allErrs, field.Required(fldPath.Child("imagePullPolicy"), "it defaults from the image's tag"))
	default:
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("imagePullPolicy"), c.ImagePullPolicy, []PullPolicy{PullAlways, PullIfNotPresent, PullNever}))
	}
	allErrs = append(allErrs, validateContainerPorts(c.Ports, fldPath.Child("ports"))...)
	allErrs = append(allErrs, validateEnv(c.Env, fldPath.Child("env"))...)
	allErrs = append(allErrs, validateEnvFrom(c.EnvFrom, fldPath.Child("envFrom"))...)
	allErrs = append(allErrs, validateProbes(c, fldPath)...)
	allErrs = append(allErrs, validateSecurityContext(c.SecurityContext, fldPath.Child("securityContext"))...)
	allErrs = append(allErrs, validateLifecycle(c, fldPath)...)
	allErrs = append(allErrs, validateVolumeMounts(c.VolumeMounts, volumes, fldPath.Child("volumeMounts"))...)
	return append(allErrs, validateResources(&c.Resources, fldPath.Child("resources"))...)
}

func validateImage(image string, fldPath *field.Path) field.ErrorList {
	if image == "" {
		return field.ErrorList{field.Required(fldPath, "an image reference is required")}
	}
	if strings.TrimSpace(image) != image {
		return field.ErrorList{field.Invalid(fldPath, image, "must not have leading or trailing whitespace")}
	}
	return nil
}

// validateContainerPorts checks each port, and that names and
// (containerPort, protocol) pairs are unique in the container: both are keys
// by which the port is referred to (the latter is the list's merge key).
func validateContainerPorts(ports []ContainerPort, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	names := sets.New[string]()
	keys := sets.New[ContainerPort]()
	for i, p := range ports {
		idxPath := fldPath.Index(i)
		allErrs = append(allErrs, validateContainerPort(&p, idxPath)...)
		if p.Name != "" {
			if names.Has(p.Name) {
				allErrs = append(allErrs, field.Duplicate(idxPath.Child("name"), p.Name))
			}
			names.Insert(p.Name)
		}
		key := ContainerPort{ContainerPort: p.ContainerPort, Protocol: p.Protocol}
		if keys.Has(key) {
			allErrs = append(allErrs, field.Duplicate(idxPath, fmt.Sprintf("%d/%s", p.ContainerPort, p.Protocol)))
		}
		keys.Insert(key)
	}
	return allErrs
}

func validateContainerPort(p *ContainerPort, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if p.Name != "" {
		for _, msg := range validation.IsValidPortName(p.Name) {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("name"), p.Name, msg))
		}
	}
	if p.ContainerPort == 0 {
		allErrs = append(allErrs, field.Required(fldPath.Child("containerPort"), "a container port is required"))
	} else {
		allErrs = append(allErrs, validatePortNum(p.ContainerPort, fldPath.Child("containerPort"))...)
	}
	if p.HostPort != 0 {
		allErrs = append(allErrs, validatePortNum(p.HostPort, fldPath.Child("hostPort"))...)
	}
	if p.HostIP != "" {
		switch addr, err := netip.ParseAddr(p.HostIP); {
		case err != nil || !addr.Is4():
			allErrs = append(allErrs, field.Invalid(fldPath.Child("hostIP"), p.HostIP, "must be an IPv4 address (Instance networking is IPv4)"))
		case p.HostPort == 0:
			allErrs = append(allErrs, field.Forbidden(fldPath.Child("hostIP"), "needs hostPort: it is the address hostPort is published on"))
		}
	}
	return append(allErrs, validateProtocol(p.Protocol, fldPath.Child("protocol"))...)
}

// validateHostPorts refuses two ports of the Instance that would publish
// the same host port, protocol and address (an empty hostIP or 0.0.0.0 is
// every address, so it clashes with any), and, with hostNetwork, a hostPort
// other than the containerPort: the container listens on the node itself.
func validateHostPorts(spec *InstanceTemplateSpec, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	type published struct {
		port     int32
		protocol Protocol
		ip       string
	}
	var seen []published
	for i := range spec.Containers {
		for j, p := range spec.Containers[i].Ports {
			if p.HostPort == 0 {
				continue
			}
			portPath := fldPath.Child("containers").Index(i).Child("ports").Index(j)
			if spec.HostNetwork && p.HostPort != p.ContainerPort {
				allErrs = append(allErrs, field.Invalid(portPath.Child("hostPort"), p.HostPort, "must equal containerPort with hostNetwork"))
			}
			for _, s := range seen {
				if s.port == p.HostPort && s.protocol == p.Protocol && (s.ip == p.HostIP || everyAddress(s.ip) || everyAddress(p.HostIP)) {
					allErrs = append(allErrs, field.Duplicate(portPath.Child("hostPort"), fmt.Sprintf("%d/%s", p.HostPort, p.Protocol)))
					break
				}
			}
			seen = append(seen, published{p.HostPort, p.Protocol, p.HostIP})
		}
	}
	return allErrs
}

// everyAddress reports whether a hostIP publishes on every address of
// the node, as the scheduler and the agent read it.
func everyAddress(hostIP string) bool { return hostIP == "" || hostIP == "0.0.0.0" }

func validatePortNum(port int32, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for _, msg := range validation.IsValidPortNum(int(port)) {
		allErrs = append(allErrs, field.Invalid(fldPath, port, msg))
	}
	return allErrs
}

func validateProtocol(p Protocol, fldPath *field.Path) field.ErrorList {
	switch p {
	case ProtocolTCP, ProtocolUDP, ProtocolSCTP:
		return nil
	case "":
		return field.ErrorList{field.Required(fldPath, "protocol is required (it defaults to TCP)")}
	default:
		return field.ErrorList{field.NotSupported(fldPath, p, []Protocol{ProtocolTCP, ProtocolUDP, ProtocolSCTP})}
	}
}

// validateEnv requires valid, unique names: the list is keyed by name, and
// a duplicate would leave which value wins to the runtime.
func validateEnv(env []EnvVar, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	names := sets.New[string]()
	for i, e := range env {
		namePath := fldPath.Index(i).Child("name")
		if e.Name == "" {
			allErrs = append(allErrs, field.Required(namePath, "an environment variable name is required"))
			continue
		}
		for _, msg := range validation.IsEnvVarName(e.Name) {
			allErrs = append(allErrs, field.Invalid(namePath, e.Name, msg))
		}
		if names.Has(e.Name) {
			allErrs = append(allErrs, field.Duplicate(namePath, e.Name))
		}
		names.Insert(e.Name)
		if e.ValueFrom != nil {
			allErrs = append(allErrs, validateEnvVarSource(e, fldPath.Index(i))...)
		}
	}
	return allErrs
}

func validateEnvVarSource(e EnvVar, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	from := fldPath.Child("valueFrom")
	if e.Value != "" {
		allErrs = append(allErrs, field.Invalid(from, "", "may not be specified when `value` is not empty"))
	}
	switch s := e.ValueFrom; {
	case (s.SecretKeyRef == nil) == (s.ConfigMapKeyRef == nil):
		allErrs = append(allErrs, field.Invalid(from, "", "must specify exactly one of: `secretKeyRef` or `configMapKeyRef`"))
	case s.SecretKeyRef != nil:
		allErrs = append(allErrs, validateKeyRef(s.SecretKeyRef.Name, s.SecretKeyRef.Key, from.Child("secretKeyRef"))...)
	default:
		allErrs = append(allErrs, validateKeyRef(s.ConfigMapKeyRef.Name, s.ConfigMapKeyRef.Key, from.Child("configMapKeyRef"))...)
	}
	return allErrs
}

func validateKeyRef(name, key string, fldPath *field.Path) field.ErrorList {
	allErrs := validateRefName(name, fldPath.Child("name"))
	if key == "" {
		return append(allErrs, field.Required(fldPath.Child("key"), ""))
	}
	for _, msg := range validation.IsConfigMapKey(key) {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("key"), key, msg))
	}
	return allErrs
}

func validateRefName(name string, fldPath *field.Path) field.ErrorList {
	if name == "" {
		return field.ErrorList{field.Required(fldPath, "")}
	}
	var allErrs field.ErrorList
	for _, msg := range validation.IsDNS1123Subdomain(name) {
		allErrs = append(allErrs, field.Invalid(fldPath, name, msg))
	}
	return allErrs
}

// validateEnvFrom requires exactly one source per entry and a prefix that
// keeps names valid.
func validateEnvFrom(envFrom []EnvFromSource, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for i, e := range envFrom {
		p := fldPath.Index(i)
		if e.Prefix != "" {
			for _, msg := range validation.IsEnvVarName(e.Prefix) {
				allErrs = append(allErrs, field.Invalid(p.Child("prefix"), e.Prefix, msg))
			}
		}
		switch {
		case (e.SecretRef == nil) == (e.ConfigMapRef == nil):
			allErrs = append(allErrs, field.Invalid(p, "", "must specify exactly one of: `secretRef` or `configMapRef`"))
		case e.SecretRef != nil:
			allErrs = append(allErrs, validateRefName(e.SecretRef.Name, p.Child("secretRef", "name"))...)
		default:
			allErrs = append(allErrs, validateRefName(e.ConfigMapRef.Name, p.Child("configMapRef", "name"))...)
		}
	}
	return allErrs
}

// validateResources checks requests and limits, and that no request exceeds
// its limit: the scheduler reserves requests, the agent enforces limits, and
// a request above the limit could never be used.
func validateResources(r *ResourceRequirements, fldPath *field.Path) field.ErrorList {
	requestsPath := fldPath.Child("requests")
	allErrs := validateContainerResourceList(r.Requests, requestsPath)
	allErrs = append(allErrs, validateContainerResourceList(r.Limits, fldPath.Child("limits"))...)
	for _, name := range sortedResourceNames(r.Requests) {
		limit, ok := r.Limits[name]
		if !ok {
			continue
		}
		allErrs = append(allErrs, validateRequestAgainstLimit(name, r.Requests[name], limit, requestsPath.Key(string(name)))...)
	}
	return allErrs
}

func validateRequestAgainstLimit(name corev1.ResourceName, request, limit resource.Quantity, fldPath *field.Path) field.ErrorList {
	if isExtendedResourceName(name) {
		if request.Cmp(limit) != 0 {
			return field.ErrorList{field.Invalid(fldPath, request.String(), fmt.Sprintf("must be equal to %s limit of %s: extended resources cannot be overcommitted", name, limit.String()))}
		}
		return nil
	}
	if request.Cmp(limit) > 0 {
		return field.ErrorList{field.Invalid(fldPath, request.String(), fmt.Sprintf("must be less than or equal to %s limit of %s", name, limit.String()))}
	}
	return nil
}

// validateContainerResourceList adds to the general checks that extended
// resources (devices such as skiff.dev/gpu) come in whole units.
func validateContainerResourceList(list corev1.ResourceList, fldPath *field.Path) field.ErrorList {
	allErrs := validateResourceQuantities(list, fldPath)
	for _, name := range sortedResourceNames(list) {
		if q := list[name]; isExtendedResourceName(name) && q.MilliValue()%1000 != 0 {
			allErrs = append(allErrs, field.Invalid(fldPath.Key(string(name)), q.String(), "must be a whole number: extended resources cannot be split"))
		}
	}
	return allErrs
}

// isExtendedResourceName is true for domain-prefixed names outside
// kubernetes.io, which is reserved for native resources.
func isExtendedResourceName(name corev1.ResourceName) bool {
	domain, _, found := strings.Cut(string(name), "/")
	if !found {
		return false
	}
	return domain != "kubernetes.io" && !strings.HasSuffix(domain, ".kubernetes.io")
}
