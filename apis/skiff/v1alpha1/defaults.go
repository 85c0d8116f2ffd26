package v1alpha1

import (
	"maps"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Default values, named so that validation messages and tests agree with them.
const (
	DefaultReplicas                      int32 = 1
	DefaultProgressDeadlineSeconds       int32 = 600
	DefaultTerminationGracePeriodSeconds int64 = 30
)

// defaultRollingUpdateBound is maxSurge and maxUnavailable when unset, as
// for a Kubernetes Deployment. A function, so each Workload gets its own.
func defaultRollingUpdateBound() *intstr.IntOrString {
	return ptrTo(intstr.FromString("25%"))
}

// addDefaultingFuncs registers the defaulters with the scheme, so that every
// decode through a codec of the scheme (the apiserver's request bodies and
// storage reads) applies them, as Kubernetes does for its built-in kinds.
func addDefaultingFuncs(scheme *runtime.Scheme) error {
	scheme.AddTypeDefaultingFunc(&Workload{}, func(obj interface{}) { SetDefaults_Workload(obj.(*Workload)) })
	scheme.AddTypeDefaultingFunc(&WorkloadList{}, func(obj interface{}) { setDefaultsWorkloadList(obj.(*WorkloadList)) })
	scheme.AddTypeDefaultingFunc(&Instance{}, func(obj interface{}) { SetDefaults_Instance(obj.(*Instance)) })
	scheme.AddTypeDefaultingFunc(&InstanceList{}, func(obj interface{}) { setDefaultsInstanceList(obj.(*InstanceList)) })
	scheme.AddTypeDefaultingFunc(&Node{}, func(obj interface{}) { SetDefaults_Node(obj.(*Node)) })
	scheme.AddTypeDefaultingFunc(&NodeList{}, func(obj interface{}) { setDefaultsNodeList(obj.(*NodeList)) })
	return nil
}

func setDefaultsWorkloadList(list *WorkloadList) {
	for i := range list.Items {
		SetDefaults_Workload(&list.Items[i])
	}
}

func setDefaultsInstanceList(list *InstanceList) {
	for i := range list.Items {
		SetDefaults_Instance(&list.Items[i])
	}
}

func setDefaultsNodeList(list *NodeList) {
	for i := range list.Items {
		SetDefaults_Node(&list.Items[i])
	}
}

// SetDefaults_Workload fills the unset fields of a Workload: one replica, a
// RollingUpdate of 25% surge and 25% unavailable, a 600 s progress deadline,
// a selector equal to the template's labels, and the template's defaults.
func SetDefaults_Workload(w *Workload) {
	spec := &w.Spec
	if spec.Replicas == nil {
		spec.Replicas = ptrTo(DefaultReplicas)
	}
	setDefaultsStrategy(&spec.Strategy)
	if spec.ProgressDeadlineSeconds == nil {
		spec.ProgressDeadlineSeconds = ptrTo(DefaultProgressDeadlineSeconds)
	}
	// Only a selector derived from labels that exist: an empty selector
	// would select every Instance in the namespace, so validation rejects a
	// missing one instead.
	if spec.Selector == nil && len(spec.Template.Metadata.Labels) > 0 {
		spec.Selector = &metav1.LabelSelector{MatchLabels: maps.Clone(spec.Template.Metadata.Labels)}
	}
	SetDefaults_InstanceTemplateSpec(&spec.Template.Spec)
}

// setDefaultsStrategy defaults the type to RollingUpdate and its bounds.
// A Recreate strategy gets no rollingUpdate: validation forbids one there.
func setDefaultsStrategy(s *WorkloadStrategy) {
	if s.Type == "" {
		s.Type = RollingUpdateStrategy
	}
	if s.Type != RollingUpdateStrategy {
		return
	}
	if s.RollingUpdate == nil {
		s.RollingUpdate = &RollingUpdate{}
	}
	if s.RollingUpdate.MaxSurge == nil {
		s.RollingUpdate.MaxSurge = defaultRollingUpdateBound()
	}
	if s.RollingUpdate.MaxUnavailable == nil {
		s.RollingUpdate.MaxUnavailable = defaultRollingUpdateBound()
	}
}

// SetDefaults_InstanceTemplateSpec fills the unset fields of an Instance
// template: restart policy Always, a 30 s grace period, TCP ports, Equal
// tolerations, requests equal to limits where only limits are set, and
// mode 0644 for the files of configMap and secret volumes.
func SetDefaults_InstanceTemplateSpec(spec *InstanceTemplateSpec) {
	if spec.RestartPolicy == "" {
		spec.RestartPolicy = RestartPolicyAlways
	}
	if spec.TerminationGracePeriodSeconds == nil {
		spec.TerminationGracePeriodSeconds = ptrTo(DefaultTerminationGracePeriodSeconds)
	}
	for i := range spec.Containers {
		setDefaultsContainer(&spec.Containers[i])
	}
	for i := range spec.InitContainers {
		setDefaultsContainer(&spec.InitContainers[i])
	}
	for i := range spec.Tolerations {
		setDefaultsToleration(&spec.Tolerations[i])
	}
	for i := range spec.Volumes {
		setDefaultsVolume(&spec.Volumes[i])
	}
}

// setDefaultsVolume gives configMap and secret volumes Kubernetes' default
// file mode, 0644. A hostPath's type stays as written: unset checks nothing.
func setDefaultsVolume(v *Volume) {
	if c := v.ConfigMap; c != nil && c.DefaultMode == nil {
		c.DefaultMode = ptrTo(DefaultVolumeMode)
	}
	if s := v.Secret; s != nil && s.DefaultMode == nil {
		s.DefaultMode = ptrTo(DefaultVolumeMode)
	}
}

func setDefaultsContainer(c *Container) {
	if c.TerminationMessagePath == "" {
		c.TerminationMessagePath = DefaultTerminationMessagePath
	}
	if c.ImagePullPolicy == "" {
		c.ImagePullPolicy = DefaultPullPolicy(c.Image)
	}
	for i := range c.Ports {
		if c.Ports[i].Protocol == "" {
			c.Ports[i].Protocol = ProtocolTCP
		}
	}
	setDefaultsRequestsFromLimits(&c.Resources)
	setDefaultsProbe(c.LivenessProbe)
	setDefaultsProbe(c.ReadinessProbe)
	setDefaultsProbe(c.StartupProbe)
}

// setDefaultsRequestsFromLimits copies a limit into the requests when that
// resource has no request: the scheduler reserves requests, and a container
// that states only a ceiling is taken to need all of it (Kubernetes does the
// same, which also makes limits-only containers Guaranteed).
func setDefaultsRequestsFromLimits(r *ResourceRequirements) {
	for name, limit := range r.Limits {
		if _, ok := r.Requests[name]; ok {
			continue
		}
		if r.Requests == nil {
			r.Requests = corev1.ResourceList{}
		}
		r.Requests[name] = limit.DeepCopy()
	}
}

// setDefaultsToleration makes the Equal operator explicit. An empty key
// keeps an empty operator so that validation reports it: a keyless
// toleration only makes sense with Exists (tolerate every taint).
func setDefaultsToleration(t *Toleration) {
	if t.Operator == "" && t.Key != "" {
		t.Operator = TolerationOpEqual
	}
}

// SetDefaults_Instance fills the unset fields of an Instance's spec. An
// Instance created directly, not from a Workload, gets the same defaults as
// a templated one.
func SetDefaults_Instance(i *Instance) {
	SetDefaults_InstanceTemplateSpec(&i.Spec.InstanceTemplateSpec)
	setDefaultUnreachableToleration(&i.Spec.InstanceTemplateSpec)
	setDefaultHostNetworkPorts(&i.Spec.InstanceTemplateSpec)
}

// setDefaultHostNetworkPorts publishes a hostNetwork Instance's container
// ports as host ports, which they are: the container listens on the node,
// and the scheduler must not put a second one there (as Kubernetes
// defaults a hostNetwork Pod's ports). Templates are left alone.
func setDefaultHostNetworkPorts(spec *InstanceTemplateSpec) {
	if !spec.HostNetwork {
		return
	}
	for i := range spec.Containers {
		for j := range spec.Containers[i].Ports {
			if p := &spec.Containers[i].Ports[j]; p.HostPort == 0 {
				p.HostPort = p.ContainerPort
			}
		}
	}
}

// setDefaultUnreachableToleration lets an Instance ride out a node that
// stops answering for DefaultTolerationSeconds before it is replaced, unless
// it tolerates the unreachable taint itself (Kubernetes' DefaultToleration-
// Seconds admission does the same for pods). Templates are left alone, so
// the Workload a user wrote reads back as written.
func setDefaultUnreachableToleration(spec *InstanceTemplateSpec) {
	for _, t := range spec.Tolerations {
		if (t.Key == TaintUnreachable || (t.Key == "" && t.Operator == TolerationOpExists)) &&
			(t.Effect == "" || t.Effect == TaintEffectNoExecute) {
			return
		}
	}
	spec.Tolerations = append(spec.Tolerations, Toleration{
		Key: TaintUnreachable, Operator: TolerationOpExists,
		Effect: TaintEffectNoExecute, TolerationSeconds: ptrTo(DefaultTolerationSeconds),
	})
}

// SetDefaults_Node fills the unset fields of a Node. Nothing needs a
// default yet; the function exists so that the scheme defaults every kind
// the same way and a future default has an obvious home.
func SetDefaults_Node(_ *Node) {}

// DefaultPullPolicy is Kubernetes' default for image: Always for a
// :latest tag or no tag (unless pinned by digest), IfNotPresent otherwise.
func DefaultPullPolicy(image string) PullPolicy {
	if strings.Contains(image, "@") {
		return PullIfNotPresent
	}
	name := image[strings.LastIndex(image, "/")+1:]
	if i := strings.LastIndex(name, ":"); i < 0 || name[i+1:] == "latest" {
		return PullAlways
	}
	return PullIfNotPresent
}

// ComputeQOSClass returns the quality-of-service class of an Instance from
// its containers' cpu and memory, by the Kubernetes rules: BestEffort when
// no container requests or limits either; Guaranteed when every container
// limits both and requests what it limits (a missing request counts as the
// limit, which defaulting would copy); Burstable otherwise. Zero quantities
// count as unset, and extended resources do not count.
func ComputeQOSClass(spec *InstanceTemplateSpec) QOSClass {
	all := append(append([]Container(nil), spec.InitContainers...), spec.Containers...)
	if isBestEffort(all) {
		return QOSBestEffort
	}
	for i := range all {
		if !isGuaranteedContainer(&all[i].Resources) {
			return QOSBurstable
		}
	}
	return QOSGuaranteed
}

// qosResources are the resources the QoS class is computed from.
func qosResources() [2]corev1.ResourceName {
	return [2]corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory}
}

func isBestEffort(containers []Container) bool {
	for i := range containers {
		r := &containers[i].Resources
		for _, name := range qosResources() {
			if isPositive(r.Requests, name) || isPositive(r.Limits, name) {
				return false
			}
		}
	}
	return true
}

func isGuaranteedContainer(r *ResourceRequirements) bool {
	for _, name := range qosResources() {
		if !isPositive(r.Limits, name) {
			return false
		}
		request, ok := r.Requests[name]
		if ok && request.Cmp(r.Limits[name]) != 0 {
			return false
		}
	}
	return true
}

func isPositive(list corev1.ResourceList, name corev1.ResourceName) bool {
	q, ok := list[name]
	return ok && q.Sign() > 0
}

func ptrTo[T any](v T) *T { return &v }
