package v1alpha1

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Error types, short for the tables.
const (
	required     = field.ErrorTypeRequired
	invalid      = field.ErrorTypeInvalid
	duplicate    = field.ErrorTypeDuplicate
	notSupported = field.ErrorTypeNotSupported
	forbidden    = field.ErrorTypeForbidden
	tooMany      = field.ErrorTypeTooMany
)

// validTemplateSpec exercises every field of a template with valid values,
// so that each bad row below differs from it in one rule only.
func validTemplateSpec() InstanceTemplateSpec {
	return InstanceTemplateSpec{
		Containers: []Container{
			{
				Name:                   "web",
				Image:                  "registry.local/web:1.0",
				ImagePullPolicy:        PullIfNotPresent,
				TerminationMessagePath: DefaultTerminationMessagePath,
				SecurityContext: &SecurityContext{
					RunAsUser: ptrTo(int64(1000)), RunAsNonRoot: ptrTo(true), ReadOnlyRootFilesystem: ptrTo(true),
					AllowPrivilegeEscalation: ptrTo(false), Capabilities: &Capabilities{Add: []Capability{"NET_BIND_SERVICE"}, Drop: []Capability{"ALL"}},
					SeccompProfile: &SeccompProfile{Type: SeccompProfileTypeRuntimeDefault},
				},
				Lifecycle: &Lifecycle{PreStop: &LifecycleHandler{Exec: &ExecAction{Command: []string{"sh", "-c", "sleep 1"}}}},
				Env:       []EnvVar{{Name: "PORT", Value: "8080"}, {Name: "MODE"}},
				Ports: []ContainerPort{
					{Name: "http", ContainerPort: 8080, Protocol: ProtocolTCP},
					{Name: "dns", ContainerPort: 8080, HostPort: 53, Protocol: ProtocolUDP},
					{Name: "admin", ContainerPort: 9090, HostPort: 53, Protocol: ProtocolTCP, HostIP: "127.0.0.1"},
				},
				Resources: ResourceRequirements{
					Requests: resources("cpu", "500m", "memory", "256Mi", "skiff.dev/gpu", "1"),
					Limits:   resources("cpu", "1", "memory", "256Mi", "skiff.dev/gpu", "1"),
				},
				ReadinessProbe: &Probe{
					HTTPGet:        &HTTPGetAction{Path: "/ready", Port: intstr.FromString("http"), Scheme: URISchemeHTTP, HTTPHeaders: []HTTPHeader{{Name: "X-Probe", Value: "1"}}},
					TimeoutSeconds: 1, PeriodSeconds: 5, SuccessThreshold: 2, FailureThreshold: 3,
				},
				LivenessProbe: &Probe{TCPSocket: &TCPSocketAction{Port: intstr.FromInt32(8080)}, TimeoutSeconds: 1, PeriodSeconds: 10, SuccessThreshold: 1, FailureThreshold: 3},
				StartupProbe:  &Probe{Exec: &ExecAction{Command: []string{"true"}}, TimeoutSeconds: 1, PeriodSeconds: 1, SuccessThreshold: 1, FailureThreshold: 30},
			},
			{Name: "sidecar", Image: "registry.local/sidecar@sha256:0123", ImagePullPolicy: PullIfNotPresent, TerminationMessagePath: "/tmp/end",
				Lifecycle: &Lifecycle{PreStop: &LifecycleHandler{HTTPGet: &HTTPGetAction{Path: "/stop", Port: intstr.FromInt32(80), Scheme: URISchemeHTTP}}}},
		},
		InitContainers: []Container{
			{Name: "setup", Image: "registry.local/setup:1.0", ImagePullPolicy: PullIfNotPresent, TerminationMessagePath: DefaultTerminationMessagePath},
		},
		RestartPolicy: RestartPolicyAlways,
		NodeSelector:  map[string]string{"skiff.dev/zone": "a"},
		Affinity: &Affinity{
			NodeAffinity: &NodeAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: &NodeSelector{NodeSelectorTerms: []NodeSelectorTerm{{
					MatchExpressions: []NodeSelectorRequirement{
						{Key: "arch", Operator: NodeSelectorOpIn, Values: []string{"amd64", "arm64"}},
						{Key: "gpu", Operator: NodeSelectorOpExists},
						{Key: "cores", Operator: NodeSelectorOpGt, Values: []string{"4"}},
					},
				}}},
				PreferredDuringSchedulingIgnoredDuringExecution: []PreferredSchedulingTerm{{
					Weight:     100,
					Preference: NodeSelectorTerm{MatchExpressions: []NodeSelectorRequirement{{Key: "disk", Operator: NodeSelectorOpNotIn, Values: []string{"hdd"}}}},
				}},
			},
			InstanceAffinity: &InstanceAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: []InstanceAffinityTerm{{
					LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "cache"}},
					TopologyKey:   "skiff.dev/zone",
				}},
			},
			InstanceAntiAffinity: &InstanceAffinity{
				PreferredDuringSchedulingIgnoredDuringExecution: []WeightedInstanceAffinityTerm{{
					Weight: 1,
					InstanceAffinityTerm: InstanceAffinityTerm{
						LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
						TopologyKey:   "kubernetes.io/hostname",
					},
				}},
			},
		},
		Tolerations: []Toleration{
			{Key: "dedicated", Operator: TolerationOpEqual, Value: "web", Effect: TaintEffectNoSchedule},
			{Key: "flaky", Operator: TolerationOpExists},
			{Operator: TolerationOpExists},
		},
		TopologySpreadConstraints: []TopologySpreadConstraint{
			{MaxSkew: 1, TopologyKey: "skiff.dev/zone", WhenUnsatisfiable: DoNotSchedule, LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
			{MaxSkew: 2, TopologyKey: "skiff.dev/zone", WhenUnsatisfiable: ScheduleAnyway},
		},
		Priority:                      ptrTo(int32(-10)),
		TerminationGracePeriodSeconds: ptrTo(int64(0)),
	}
}

func validWorkload() *Workload {
	surge, unavailable := intstr.FromInt32(1), intstr.FromString("0%")
	return &Workload{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: WorkloadSpec{
			Replicas: ptrTo(int32(3)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: InstanceTemplate{
				Metadata: TemplateMetadata{Labels: map[string]string{"app": "web", "tier": "front"}, Annotations: map[string]string{"skiff.dev/note": "x"}},
				Spec:     validTemplateSpec(),
			},
			Strategy:                WorkloadStrategy{Type: RollingUpdateStrategy, RollingUpdate: &RollingUpdate{MaxSurge: &surge, MaxUnavailable: &unavailable}},
			ProgressDeadlineSeconds: ptrTo(int32(600)),
		},
	}
}

func validInstance() *Instance {
	return &Instance{
		ObjectMeta: metav1.ObjectMeta{Name: "web-6f9c8d7b5a-x2k4p", Namespace: "default"},
		Spec:       InstanceSpec{NodeName: "node-1.example.com", InstanceTemplateSpec: validTemplateSpec()},
	}
}

func validNode() *Node {
	return &Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-1.example.com"},
		Spec: NodeSpec{
			Taints: []Taint{
				{Key: "dedicated", Value: "web", Effect: TaintEffectNoSchedule},
				{Key: "dedicated", Value: "web", Effect: TaintEffectNoExecute},
				{Key: "skiff.dev/maintenance", Effect: TaintEffectPreferNoSchedule},
			},
			PublicKey:    testPublicKey(1),
			InstanceCIDR: "10.88.3.0/24",
		},
	}
}

// testPublicKey is a well-formed Ed25519 public key, distinct per seed byte.
func testPublicKey(seed byte) string {
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	pub := ed25519.NewKeyFromSeed(s).Public().(ed25519.PublicKey)
	return base64.StdEncoding.EncodeToString(pub)
}

func condition(typ string, status metav1.ConditionStatus) metav1.Condition {
	return metav1.Condition{Type: typ, Status: status, Reason: "Observed", LastTransitionTime: metav1.NewTime(time.Unix(1700000000, 0))}
}

// wantError fails the test unless errs holds an error of type typ at path.
func wantError(t *testing.T, errs field.ErrorList, typ field.ErrorType, path string) {
	t.Helper()
	for _, e := range errs {
		if e.Type == typ && e.Field == path {
			return
		}
	}
	t.Errorf("want a %q error at %s; got:\n%s", typ, path, formatErrors(errs))
}

func wantNoErrors(t *testing.T, errs field.ErrorList) {
	t.Helper()
	if len(errs) > 0 {
		t.Errorf("want no errors; got:\n%s", formatErrors(errs))
	}
}

func formatErrors(errs field.ErrorList) string {
	if len(errs) == 0 {
		return "  (none)"
	}
	lines := make([]string, len(errs))
	for i, e := range errs {
		lines[i] = "  " + e.Error()
	}
	return strings.Join(lines, "\n")
}

// errorCase is one bad object: the mutation that breaks it and the error
// that must be reported.
type errorCase[T any] struct {
	name   string
	mutate func(T)
	typ    field.ErrorType
	path   string
}

// updateCase is one bad update: the mutation from old to new.
type updateCase[T any] struct {
	name   string
	mutate func(newObj, oldObj T)
	typ    field.ErrorType // empty: the update is valid
	path   string
}

func TestValidObjects(t *testing.T) {
	wantNoErrors(t, ValidateWorkload(validWorkload()))
	wantNoErrors(t, ValidateInstance(validInstance()))
	wantNoErrors(t, ValidateNode(validNode()))

	unbound := validInstance()
	unbound.Spec.NodeName = ""
	wantNoErrors(t, ValidateInstance(unbound))

	defaulted := &Workload{
		ObjectMeta: metav1.ObjectMeta{Name: strings.Repeat("w", MaxWorkloadNameLength), Namespace: "ns"},
		Spec: WorkloadSpec{Template: InstanceTemplate{
			Metadata: TemplateMetadata{Labels: map[string]string{"app": "w"}},
			Spec:     InstanceTemplateSpec{Containers: []Container{{Name: "c", Image: "i", Ports: []ContainerPort{{ContainerPort: 80}}}}},
		}},
	}
	SetDefaults_Workload(defaulted)
	wantNoErrors(t, ValidateWorkload(defaulted))
}

func TestMaxWorkloadNameLength(t *testing.T) {
	instanceName := strings.Repeat("w", MaxWorkloadNameLength) + "-" + strings.Repeat("r", 10) + "-" + strings.Repeat("s", 5)
	if len(instanceName) != 63 {
		t.Errorf("longest Instance name is %d characters, want 63", len(instanceName))
	}
}

func TestValidationDoesNotPanicOnEmptyObjects(t *testing.T) {
	wantError(t, ValidateWorkload(&Workload{}), required, "spec.replicas")
	wantError(t, ValidateWorkload(&Workload{}), required, "spec.selector")
	wantError(t, ValidateInstance(&Instance{}), required, "spec.containers")
	wantError(t, ValidateNode(&Node{}), required, "metadata.name")
	ValidateWorkloadStatusUpdate(&Workload{}, &Workload{})
	ValidateInstanceStatusUpdate(&Instance{}, &Instance{})
	ValidateNodeStatusUpdate(&Node{}, &Node{})
}

func TestValidateWorkload(t *testing.T) {
	tests := []errorCase[*Workload]{
		{"name too long for instance names", func(w *Workload) { w.Name = strings.Repeat("w", MaxWorkloadNameLength+1) }, invalid, "metadata.name"},
		{"name not a DNS label", func(w *Workload) { w.Name = "web.app" }, invalid, "metadata.name"},
		{"name missing", func(w *Workload) { w.Name = "" }, required, "metadata.name"},
		{"namespace missing", func(w *Workload) { w.Namespace = "" }, required, "metadata.namespace"},
		{"replicas negative", func(w *Workload) { w.Spec.Replicas = ptrTo(int32(-1)) }, invalid, "spec.replicas"},
		{"replicas nil", func(w *Workload) { w.Spec.Replicas = nil }, required, "spec.replicas"},
		{"selector nil", func(w *Workload) { w.Spec.Selector = nil }, required, "spec.selector"},
		{"selector empty", func(w *Workload) { w.Spec.Selector = &metav1.LabelSelector{} }, invalid, "spec.selector"},
		{"selector label invalid", func(w *Workload) { w.Spec.Selector.MatchLabels["app"] = "not valid!" }, invalid, "spec.selector.matchLabels"},
		{"selector operator invalid", func(w *Workload) {
			w.Spec.Selector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Near"}}
		}, invalid, "spec.selector.matchExpressions[0].operator"},
		{"selector does not match template", func(w *Workload) { w.Spec.Selector.MatchLabels["app"] = "db" }, invalid, "spec.template.metadata.labels"},
		{"template label invalid", func(w *Workload) { w.Spec.Template.Metadata.Labels["bad key!"] = "x" }, invalid, "spec.template.metadata.labels"},
		{"template annotation invalid", func(w *Workload) { w.Spec.Template.Metadata.Annotations["bad key!"] = "x" }, invalid, "spec.template.metadata.annotations"},
		{"template has no containers", func(w *Workload) { w.Spec.Template.Spec.Containers = nil }, required, "spec.template.spec.containers"},
		{"template container name duplicate", func(w *Workload) { w.Spec.Template.Spec.Containers[1].Name = "web" }, duplicate, "spec.template.spec.containers[1].name"},
		{"template request above limit", func(w *Workload) {
			w.Spec.Template.Spec.Containers[0].Resources.Requests = resources("cpu", "2")
		}, invalid, "spec.template.spec.containers[0].resources.requests[cpu]"},
		{"template port out of range", func(w *Workload) { w.Spec.Template.Spec.Containers[0].Ports[0].ContainerPort = 70000 }, invalid, "spec.template.spec.containers[0].ports[0].containerPort"},
		{"strategy type unknown", func(w *Workload) { w.Spec.Strategy.Type = "BlueGreen" }, notSupported, "spec.strategy.type"},
		{"strategy type empty", func(w *Workload) { w.Spec.Strategy.Type = "" }, required, "spec.strategy.type"},
		{"rollingUpdate with Recreate", func(w *Workload) { w.Spec.Strategy.Type = RecreateStrategy }, forbidden, "spec.strategy.rollingUpdate"},
		{"maxSurge negative", func(w *Workload) { w.Spec.Strategy.RollingUpdate.MaxSurge = ptrTo(intstr.FromInt32(-1)) }, invalid, "spec.strategy.rollingUpdate.maxSurge"},
		{"maxSurge not a percentage", func(w *Workload) { w.Spec.Strategy.RollingUpdate.MaxSurge = ptrTo(intstr.FromString("ten")) }, invalid, "spec.strategy.rollingUpdate.maxSurge"},
		{"maxSurge negative percentage", func(w *Workload) { w.Spec.Strategy.RollingUpdate.MaxSurge = ptrTo(intstr.FromString("-5%")) }, invalid, "spec.strategy.rollingUpdate.maxSurge"},
		{"maxUnavailable negative", func(w *Workload) { w.Spec.Strategy.RollingUpdate.MaxUnavailable = ptrTo(intstr.FromInt32(-2)) }, invalid, "spec.strategy.rollingUpdate.maxUnavailable"},
		{"maxUnavailable above 100%", func(w *Workload) { w.Spec.Strategy.RollingUpdate.MaxUnavailable = ptrTo(intstr.FromString("101%")) }, invalid, "spec.strategy.rollingUpdate.maxUnavailable"},
		{"both bounds zero", func(w *Workload) { w.Spec.Strategy.RollingUpdate.MaxSurge = ptrTo(intstr.FromString("0%")) }, invalid, "spec.strategy.rollingUpdate.maxUnavailable"},
		{"both bounds zero ints", func(w *Workload) {
			w.Spec.Strategy.RollingUpdate = &RollingUpdate{MaxSurge: ptrTo(intstr.FromInt32(0)), MaxUnavailable: ptrTo(intstr.FromInt32(0))}
		}, invalid, "spec.strategy.rollingUpdate.maxUnavailable"},
		{"progressDeadlineSeconds zero", func(w *Workload) { w.Spec.ProgressDeadlineSeconds = ptrTo(int32(0)) }, invalid, "spec.progressDeadlineSeconds"},
		{"minReadySeconds negative", func(w *Workload) { w.Spec.MinReadySeconds = -1 }, invalid, "spec.minReadySeconds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := validWorkload()
			tt.mutate(w)
			wantError(t, ValidateWorkload(w), tt.typ, tt.path)
		})
	}
}

func TestValidateWorkloadAcceptsBounds(t *testing.T) {
	for _, ru := range []RollingUpdate{
		{MaxSurge: ptrTo(intstr.FromString("100%")), MaxUnavailable: ptrTo(intstr.FromString("100%"))},
		{MaxSurge: ptrTo(intstr.FromString("250%")), MaxUnavailable: ptrTo(intstr.FromInt32(0))},
		{MaxSurge: ptrTo(intstr.FromInt32(0)), MaxUnavailable: ptrTo(intstr.FromInt32(1))},
	} {
		w := validWorkload()
		w.Spec.Strategy.RollingUpdate = &ru
		wantNoErrors(t, ValidateWorkload(w))
	}
	recreate := validWorkload()
	recreate.Spec.Strategy = WorkloadStrategy{Type: RecreateStrategy}
	wantNoErrors(t, ValidateWorkload(recreate))
}

func TestValidateWorkloadUpdate(t *testing.T) {
	tests := []updateCase[*Workload]{
		{"scale and template change", func(n, _ *Workload) {
			n.Spec.Replicas = ptrTo(int32(10))
			n.Spec.Template.Spec.Containers[0].Image = "registry.local/web:2.0"
		}, "", ""},
		{"selector changed", func(n, _ *Workload) { n.Spec.Selector.MatchLabels["tier"] = "front" }, invalid, "spec.selector"},
		{"selector removed", func(n, _ *Workload) { n.Spec.Selector = nil }, invalid, "spec.selector"},
		{"new object invalid", func(n, _ *Workload) { n.Spec.Replicas = ptrTo(int32(-1)) }, invalid, "spec.replicas"},
		{"name changed", func(n, _ *Workload) { n.Name = "api" }, invalid, "metadata.name"},
	}
	runUpdateCases(t, tests, validWorkload, ValidateWorkloadUpdate)
}

func TestValidateWorkloadStatusUpdate(t *testing.T) {
	tests := []updateCase[*Workload]{
		{"valid status", func(n, _ *Workload) {
			n.Status = WorkloadStatus{
				ObservedGeneration: 2, Replicas: 3, ReadyReplicas: 2, UpdatedReplicas: 1, AvailableReplicas: 2,
				Conditions: []metav1.Condition{condition(WorkloadAvailable, metav1.ConditionTrue), condition(WorkloadProgressing, metav1.ConditionUnknown)},
				Plan:       &WorkloadPlan{Creates: 1, Urgency: UrgencyHigh},
			}
		}, "", ""},
		{"replicas negative", func(n, _ *Workload) { n.Status.Replicas = -1 }, invalid, "status.replicas"},
		{"readyReplicas negative", func(n, _ *Workload) { n.Status.ReadyReplicas = -1 }, invalid, "status.readyReplicas"},
		{"updatedReplicas negative", func(n, _ *Workload) { n.Status.UpdatedReplicas = -1 }, invalid, "status.updatedReplicas"},
		{"availableReplicas negative", func(n, _ *Workload) { n.Status.AvailableReplicas = -1 }, invalid, "status.availableReplicas"},
		{"observedGeneration negative", func(n, _ *Workload) { n.Status.ObservedGeneration = -1 }, invalid, "status.observedGeneration"},
		{"condition without type", func(n, _ *Workload) { n.Status.Conditions = []metav1.Condition{condition("", metav1.ConditionTrue)} }, required, "status.conditions[0].type"},
		{"condition status unknown value", func(n, _ *Workload) { n.Status.Conditions = []metav1.Condition{condition(WorkloadAvailable, "Maybe")} }, notSupported, "status.conditions[0].status"},
		{"condition duplicate", func(n, _ *Workload) {
			n.Status.Conditions = []metav1.Condition{condition(WorkloadAvailable, metav1.ConditionTrue), condition(WorkloadAvailable, metav1.ConditionFalse)}
		}, duplicate, "status.conditions[1]"},
		{"plan count negative", func(n, _ *Workload) { n.Status.Plan = &WorkloadPlan{Creates: -1} }, invalid, "status.plan.creates"},
		{"plan urgency unknown", func(n, _ *Workload) { n.Status.Plan = &WorkloadPlan{Urgency: "Extreme"} }, notSupported, "status.plan.urgency"},
		{"namespace changed", func(n, _ *Workload) { n.Namespace = "other" }, invalid, "metadata.namespace"},
	}
	runUpdateCases(t, tests, validWorkload, ValidateWorkloadStatusUpdate)
}

func TestValidateInstance(t *testing.T) {
	c0 := "spec.containers[0]"
	tests := []errorCase[*Instance]{
		{"name not a DNS label", func(i *Instance) { i.Name = "Web_1" }, invalid, "metadata.name"},
		{"namespace missing", func(i *Instance) { i.Namespace = "" }, required, "metadata.namespace"},
		{"nodeName not a DNS subdomain", func(i *Instance) { i.Spec.NodeName = "Node_1" }, invalid, "spec.nodeName"},
		{"no containers", func(i *Instance) { i.Spec.Containers = []Container{} }, required, "spec.containers"},
		{"container name missing", func(i *Instance) { i.Spec.Containers[0].Name = "" }, required, c0 + ".name"},
		{"container name not a DNS label", func(i *Instance) { i.Spec.Containers[0].Name = "Web" }, invalid, c0 + ".name"},
		{"container name duplicate", func(i *Instance) { i.Spec.Containers[1].Name = "web" }, duplicate, "spec.containers[1].name"},
		{"image missing", func(i *Instance) { i.Spec.Containers[0].Image = "" }, required, c0 + ".image"},
		{"image with whitespace", func(i *Instance) { i.Spec.Containers[0].Image = " web" }, invalid, c0 + ".image"},
		{"containerPort missing", func(i *Instance) { i.Spec.Containers[0].Ports[0].ContainerPort = 0 }, required, c0 + ".ports[0].containerPort"},
		{"containerPort out of range", func(i *Instance) { i.Spec.Containers[0].Ports[0].ContainerPort = 65536 }, invalid, c0 + ".ports[0].containerPort"},
		{"containerPort negative", func(i *Instance) { i.Spec.Containers[0].Ports[0].ContainerPort = -1 }, invalid, c0 + ".ports[0].containerPort"},
		{"hostPort out of range", func(i *Instance) { i.Spec.Containers[0].Ports[1].HostPort = 70000 }, invalid, c0 + ".ports[1].hostPort"},
		{"hostIP not an IP", func(i *Instance) { i.Spec.Containers[0].Ports[2].HostIP = "localhost" }, invalid, c0 + ".ports[2].hostIP"},
		{"hostIP IPv6", func(i *Instance) { i.Spec.Containers[0].Ports[2].HostIP = "::1" }, invalid, c0 + ".ports[2].hostIP"},
		{"hostPort on 0.0.0.0 and on one address", func(i *Instance) {
			i.Spec.Containers[0].Ports[1].Protocol, i.Spec.Containers[0].Ports[1].ContainerPort, i.Spec.Containers[0].Ports[1].HostIP = ProtocolTCP, 7070, "0.0.0.0"
		}, duplicate, c0 + ".ports[2].hostPort"},
		{"hostIP without hostPort", func(i *Instance) { i.Spec.Containers[0].Ports[0].HostIP = "127.0.0.1" }, forbidden, c0 + ".ports[0].hostIP"},
		{"hostPort published twice", func(i *Instance) {
			i.Spec.Containers[1].Ports = []ContainerPort{{ContainerPort: 53, HostPort: 53, Protocol: ProtocolUDP}}
		}, duplicate, "spec.containers[1].ports[0].hostPort"},
		{"hostPort on every address and on one", func(i *Instance) {
			i.Spec.Containers[0].Ports[1].Protocol = ProtocolTCP
			i.Spec.Containers[0].Ports[1].ContainerPort = 7070
		}, duplicate, c0 + ".ports[2].hostPort"},
		{"hostPort other than containerPort with hostNetwork", func(i *Instance) { i.Spec.HostNetwork = true }, invalid, c0 + ".ports[1].hostPort"},
		{"protocol unknown", func(i *Instance) { i.Spec.Containers[0].Ports[0].Protocol = "HTTP" }, notSupported, c0 + ".ports[0].protocol"},
		{"protocol missing", func(i *Instance) { i.Spec.Containers[0].Ports[0].Protocol = "" }, required, c0 + ".ports[0].protocol"},
		{"port name not IANA", func(i *Instance) { i.Spec.Containers[0].Ports[0].Name = "http_alt" }, invalid, c0 + ".ports[0].name"},
		{"port name duplicate", func(i *Instance) { i.Spec.Containers[0].Ports[1].Name = "http" }, duplicate, c0 + ".ports[1].name"},
		{"port and protocol duplicate", func(i *Instance) { i.Spec.Containers[0].Ports[1].Protocol = ProtocolTCP }, duplicate, c0 + ".ports[1]"},
		{"env name invalid", func(i *Instance) { i.Spec.Containers[0].Env[0].Name = "A=B" }, invalid, c0 + ".env[0].name"},
		{"env name missing", func(i *Instance) { i.Spec.Containers[0].Env[1].Name = "" }, required, c0 + ".env[1].name"},
		{"env name duplicate", func(i *Instance) { i.Spec.Containers[0].Env[1].Name = "PORT" }, duplicate, c0 + ".env[1].name"},
		{"probe without a handler", func(i *Instance) { i.Spec.Containers[0].ReadinessProbe.HTTPGet = nil }, invalid, c0 + ".readinessProbe"},
		{"probe with two handlers", func(i *Instance) {
			i.Spec.Containers[0].LivenessProbe.Exec = &ExecAction{Command: []string{"true"}}
		}, invalid, c0 + ".livenessProbe"},
		{"probe port name the container lacks", func(i *Instance) {
			i.Spec.Containers[0].ReadinessProbe.HTTPGet.Port = intstr.FromString("metrics")
		}, invalid, c0 + ".readinessProbe.httpGet.port"},
		{"probe port out of range", func(i *Instance) {
			i.Spec.Containers[0].LivenessProbe.TCPSocket.Port = intstr.FromInt32(70000)
		}, invalid, c0 + ".livenessProbe.tcpSocket.port"},
		{"probe scheme unknown", func(i *Instance) { i.Spec.Containers[0].ReadinessProbe.HTTPGet.Scheme = "FTP" }, notSupported, c0 + ".readinessProbe.httpGet.scheme"},
		{"probe path relative", func(i *Instance) { i.Spec.Containers[0].ReadinessProbe.HTTPGet.Path = "ready" }, invalid, c0 + ".readinessProbe.httpGet.path"},
		{"probe header name invalid", func(i *Instance) {
			i.Spec.Containers[0].ReadinessProbe.HTTPGet.HTTPHeaders[0].Name = "X Probe"
		}, invalid, c0 + ".readinessProbe.httpGet.httpHeaders[0].name"},
		{"exec probe without a command", func(i *Instance) { i.Spec.Containers[0].StartupProbe.Exec.Command = nil }, required, c0 + ".startupProbe.exec.command"},
		{"liveness successThreshold above 1", func(i *Instance) { i.Spec.Containers[0].LivenessProbe.SuccessThreshold = 2 }, invalid, c0 + ".livenessProbe.successThreshold"},
		{"probe period negative", func(i *Instance) { i.Spec.Containers[0].ReadinessProbe.PeriodSeconds = -1 }, invalid, c0 + ".readinessProbe.periodSeconds"},
		{"runAsUser negative", func(i *Instance) { i.Spec.Containers[0].SecurityContext.RunAsUser = ptrTo(int64(-1)) }, invalid, c0 + ".securityContext.runAsUser"},
		{"capability name with a space", func(i *Instance) {
			i.Spec.Containers[0].SecurityContext.Capabilities.Add[0] = "NET ADMIN"
		}, invalid, c0 + ".securityContext.capabilities.add[0]"},
		{"seccomp Localhost", func(i *Instance) { i.Spec.Containers[0].SecurityContext.SeccompProfile.Type = "Localhost" }, notSupported, c0 + ".securityContext.seccompProfile.type"},
		{"privileged without escalation", func(i *Instance) { i.Spec.Containers[0].SecurityContext.Privileged = ptrTo(true) }, invalid, c0 + ".securityContext.allowPrivilegeEscalation"},
		{"instance seccomp unknown", func(i *Instance) {
			i.Spec.SecurityContext = &InstanceSecurityContext{SeccompProfile: &SeccompProfile{Type: "Strict"}}
		}, notSupported, "spec.securityContext.seccompProfile.type"},
		{"preStop with two handlers", func(i *Instance) {
			i.Spec.Containers[0].Lifecycle.PreStop.HTTPGet = &HTTPGetAction{Port: intstr.FromInt32(80), Scheme: URISchemeHTTP}
		}, invalid, c0 + ".lifecycle.preStop"},
		{"terminationMessagePath relative", func(i *Instance) { i.Spec.Containers[0].TerminationMessagePath = "end" }, invalid, c0 + ".terminationMessagePath"},
		{"pull policy unknown", func(i *Instance) { i.Spec.Containers[0].ImagePullPolicy = "Sometimes" }, notSupported, c0 + ".imagePullPolicy"},
		{"init container name taken by a container", func(i *Instance) { i.Spec.InitContainers[0].Name = "web" }, duplicate, "spec.initContainers[0].name"},
		{"init container with a probe", func(i *Instance) {
			i.Spec.InitContainers[0].ReadinessProbe = &Probe{Exec: &ExecAction{Command: []string{"true"}}, TimeoutSeconds: 1, PeriodSeconds: 1, SuccessThreshold: 1, FailureThreshold: 1}
		}, forbidden, "spec.initContainers[0].readinessProbe"},
		{"init container with a preStop hook", func(i *Instance) {
			i.Spec.InitContainers[0].Lifecycle = &Lifecycle{PreStop: &LifecycleHandler{Exec: &ExecAction{Command: []string{"true"}}}}
		}, forbidden, "spec.initContainers[0].lifecycle"},
		{"init container without an image", func(i *Instance) { i.Spec.InitContainers[0].Image = "" }, required, "spec.initContainers[0].image"},
		{"pull secret without a name", func(i *Instance) { i.Spec.ImagePullSecrets = []LocalObjectReference{{}} }, required, "spec.imagePullSecrets[0].name"},
		{"env value and valueFrom", func(i *Instance) {
			i.Spec.Containers[0].Env[0].ValueFrom = &EnvVarSource{SecretKeyRef: &SecretKeySelector{Name: "db", Key: "password"}}
		}, invalid, c0 + ".env[0].valueFrom"},
		{"env valueFrom with both sources", func(i *Instance) {
			i.Spec.Containers[0].Env[1].ValueFrom = &EnvVarSource{
				SecretKeyRef: &SecretKeySelector{Name: "db", Key: "password"}, ConfigMapKeyRef: &ConfigMapKeySelector{Name: "db", Key: "host"},
			}
		}, invalid, c0 + ".env[1].valueFrom"},
		{"env secretKeyRef without key", func(i *Instance) {
			i.Spec.Containers[0].Env[1].ValueFrom = &EnvVarSource{SecretKeyRef: &SecretKeySelector{Name: "db"}}
		}, required, c0 + ".env[1].valueFrom.secretKeyRef.key"},
		{"env configMapKeyRef name invalid", func(i *Instance) {
			i.Spec.Containers[0].Env[1].ValueFrom = &EnvVarSource{ConfigMapKeyRef: &ConfigMapKeySelector{Name: "Bad_Name", Key: "k"}}
		}, invalid, c0 + ".env[1].valueFrom.configMapKeyRef.name"},
		{"envFrom without a source", func(i *Instance) { i.Spec.Containers[0].EnvFrom = []EnvFromSource{{Prefix: "DB_"}} }, invalid, c0 + ".envFrom[0]"},
		{"envFrom prefix invalid", func(i *Instance) {
			i.Spec.Containers[0].EnvFrom = []EnvFromSource{{Prefix: "1=", SecretRef: &SecretEnvSource{Name: "db"}}}
		}, invalid, c0 + ".envFrom[0].prefix"},
		{"envFrom secretRef without name", func(i *Instance) {
			i.Spec.Containers[0].EnvFrom = []EnvFromSource{{SecretRef: &SecretEnvSource{}}}
		}, required, c0 + ".envFrom[0].secretRef.name"},
		{"request negative", func(i *Instance) { i.Spec.Containers[0].Resources.Requests = resources("cpu", "-1") }, invalid, c0 + ".resources.requests[cpu]"},
		{"request beyond int64 milli-units", func(i *Instance) { i.Spec.Containers[0].Resources.Requests = resources("cpu", "1e400") }, invalid, c0 + ".resources.requests[cpu]"},
		{"limit beyond int64 milli-units", func(i *Instance) { i.Spec.Containers[1].Resources.Limits = resources("memory", "9223372036854776") }, invalid, "spec.containers[1].resources.limits[memory]"},
		{"too many containers", func(i *Instance) {
			for n := len(i.Spec.Containers); n <= MaxContainers; n++ {
				i.Spec.Containers = append(i.Spec.Containers, Container{Name: fmt.Sprintf("c%d", n), Image: "busybox"})
			}
		}, tooMany, "spec.containers"},
		{"limit negative", func(i *Instance) { i.Spec.Containers[1].Resources.Limits = resources("memory", "-1Mi") }, invalid, "spec.containers[1].resources.limits[memory]"},
		{"resource name not qualified", func(i *Instance) { i.Spec.Containers[1].Resources.Limits = resources("not a name", "1") }, invalid, "spec.containers[1].resources.limits[not a name]"},
		{"request above limit", func(i *Instance) { i.Spec.Containers[0].Resources.Requests = resources("memory", "512Mi") }, invalid, c0 + ".resources.requests[memory]"},
		{"extended resource fractional", func(i *Instance) {
			i.Spec.Containers[1].Resources = ResourceRequirements{Requests: resources("skiff.dev/gpu", "500m"), Limits: resources("skiff.dev/gpu", "500m")}
		}, invalid, "spec.containers[1].resources.limits[skiff.dev/gpu]"},
		{"extended resource overcommitted", func(i *Instance) {
			i.Spec.Containers[1].Resources = ResourceRequirements{Requests: resources("skiff.dev/gpu", "1"), Limits: resources("skiff.dev/gpu", "2")}
		}, invalid, "spec.containers[1].resources.requests[skiff.dev/gpu]"},
		{"restartPolicy unknown", func(i *Instance) { i.Spec.RestartPolicy = "Sometimes" }, notSupported, "spec.restartPolicy"},
		{"restartPolicy missing", func(i *Instance) { i.Spec.RestartPolicy = "" }, required, "spec.restartPolicy"},
		{"nodeSelector key invalid", func(i *Instance) { i.Spec.NodeSelector["bad key"] = "a" }, invalid, "spec.nodeSelector"},
		{"nodeSelector value invalid", func(i *Instance) { i.Spec.NodeSelector["zone"] = "a b" }, invalid, "spec.nodeSelector"},
		{"terminationGracePeriodSeconds negative", func(i *Instance) { i.Spec.TerminationGracePeriodSeconds = ptrTo(int64(-1)) }, invalid, "spec.terminationGracePeriodSeconds"},
	}
	runErrorCases(t, tests, validInstance, ValidateInstance)
}

func TestValidateInstancePlacement(t *testing.T) {
	na := "spec.affinity.nodeAffinity"
	req := na + ".requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms"
	expr := func(i *Instance) *NodeSelectorRequirement {
		return &i.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchExpressions[0]
	}
	ia := "spec.affinity.instanceAffinity.requiredDuringSchedulingIgnoredDuringExecution[0]"
	anti := "spec.affinity.instanceAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0]"
	tsc := "spec.topologySpreadConstraints"
	tests := []errorCase[*Instance]{
		{"toleration operator unknown", func(i *Instance) { i.Spec.Tolerations[0].Operator = "Like" }, notSupported, "spec.tolerations[0].operator"},
		{"toleration Exists with value", func(i *Instance) { i.Spec.Tolerations[1].Value = "x" }, invalid, "spec.tolerations[1].value"},
		{"toleration empty key with Equal", func(i *Instance) { i.Spec.Tolerations[2].Operator = TolerationOpEqual }, invalid, "spec.tolerations[2].operator"},
		{"toleration empty key and operator", func(i *Instance) { i.Spec.Tolerations[2].Operator = "" }, invalid, "spec.tolerations[2].operator"},
		{"tolerationSeconds without NoExecute", func(i *Instance) { i.Spec.Tolerations[0].TolerationSeconds = ptrTo(int64(5)) }, invalid, "spec.tolerations[0].effect"},
		{"tolerationSeconds negative", func(i *Instance) {
			i.Spec.Tolerations[1].Effect, i.Spec.Tolerations[1].TolerationSeconds = TaintEffectNoExecute, ptrTo(int64(-1))
		}, invalid, "spec.tolerations[1].tolerationSeconds"},
		{"toleration key invalid", func(i *Instance) { i.Spec.Tolerations[0].Key = "bad key" }, invalid, "spec.tolerations[0].key"},
		{"toleration value invalid", func(i *Instance) { i.Spec.Tolerations[0].Value = "bad value" }, invalid, "spec.tolerations[0].value"},
		{"toleration effect unknown", func(i *Instance) { i.Spec.Tolerations[0].Effect = "NoRun" }, notSupported, "spec.tolerations[0].effect"},
		{"node affinity no terms", func(i *Instance) {
			i.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms = nil
		}, required, req},
		{"node affinity empty term", func(i *Instance) {
			i.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchExpressions = nil
		}, required, req + "[0].matchExpressions"},
		{"node affinity In without values", func(i *Instance) { expr(i).Values = nil }, required, req + "[0].matchExpressions[0].values"},
		{"node affinity In with invalid value", func(i *Instance) { expr(i).Values = []string{"a b"} }, invalid, req + "[0].matchExpressions[0].values[0]"},
		{"node affinity Exists with values", func(i *Instance) { expr(i).Operator = NodeSelectorOpExists }, forbidden, req + "[0].matchExpressions[0].values"},
		{"node affinity Gt with two values", func(i *Instance) { expr(i).Operator = NodeSelectorOpGt }, required, req + "[0].matchExpressions[0].values"},
		{"node affinity Lt not an integer", func(i *Instance) { expr(i).Operator, expr(i).Values = NodeSelectorOpLt, []string{"four"} }, invalid, req + "[0].matchExpressions[0].values[0]"},
		{"node affinity operator unknown", func(i *Instance) { expr(i).Operator = "Near" }, notSupported, req + "[0].matchExpressions[0].operator"},
		{"node affinity key invalid", func(i *Instance) { expr(i).Key = "bad key" }, invalid, req + "[0].matchExpressions[0].key"},
		{"node affinity weight zero", func(i *Instance) {
			i.Spec.Affinity.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].Weight = 0
		}, invalid, na + ".preferredDuringSchedulingIgnoredDuringExecution[0].weight"},
		{"node affinity weight above 100", func(i *Instance) {
			i.Spec.Affinity.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].Weight = 101
		}, invalid, na + ".preferredDuringSchedulingIgnoredDuringExecution[0].weight"},
		{"node affinity preference invalid", func(i *Instance) {
			i.Spec.Affinity.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].Preference.MatchExpressions[0].Values = nil
		}, required, na + ".preferredDuringSchedulingIgnoredDuringExecution[0].preference.matchExpressions[0].values"},
		{"instance affinity without selector", func(i *Instance) {
			i.Spec.Affinity.InstanceAffinity.RequiredDuringSchedulingIgnoredDuringExecution[0].LabelSelector = nil
		}, required, ia + ".labelSelector"},
		{"instance affinity selector invalid", func(i *Instance) {
			i.Spec.Affinity.InstanceAffinity.RequiredDuringSchedulingIgnoredDuringExecution[0].LabelSelector.MatchLabels["app"] = "a b"
		}, invalid, ia + ".labelSelector.matchLabels"},
		{"instance affinity without topologyKey", func(i *Instance) {
			i.Spec.Affinity.InstanceAffinity.RequiredDuringSchedulingIgnoredDuringExecution[0].TopologyKey = ""
		}, required, ia + ".topologyKey"},
		{"instance affinity topologyKey invalid", func(i *Instance) {
			i.Spec.Affinity.InstanceAffinity.RequiredDuringSchedulingIgnoredDuringExecution[0].TopologyKey = "bad key"
		}, invalid, ia + ".topologyKey"},
		{"anti-affinity weight zero", func(i *Instance) {
			i.Spec.Affinity.InstanceAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].Weight = 0
		}, invalid, anti + ".weight"},
		{"anti-affinity term without topologyKey", func(i *Instance) {
			i.Spec.Affinity.InstanceAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].InstanceAffinityTerm.TopologyKey = ""
		}, required, anti + ".instanceAffinityTerm.topologyKey"},
		{"spread maxSkew zero", func(i *Instance) { i.Spec.TopologySpreadConstraints[0].MaxSkew = 0 }, invalid, tsc + "[0].maxSkew"},
		{"spread topologyKey missing", func(i *Instance) { i.Spec.TopologySpreadConstraints[0].TopologyKey = "" }, required, tsc + "[0].topologyKey"},
		{"spread whenUnsatisfiable unknown", func(i *Instance) { i.Spec.TopologySpreadConstraints[0].WhenUnsatisfiable = "Maybe" }, notSupported, tsc + "[0].whenUnsatisfiable"},
		{"spread whenUnsatisfiable missing", func(i *Instance) { i.Spec.TopologySpreadConstraints[0].WhenUnsatisfiable = "" }, required, tsc + "[0].whenUnsatisfiable"},
		{"spread selector invalid", func(i *Instance) {
			i.Spec.TopologySpreadConstraints[0].LabelSelector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpIn}}
		}, required, tsc + "[0].labelSelector.matchExpressions[0].values"},
		{"spread duplicate key and action", func(i *Instance) { i.Spec.TopologySpreadConstraints[1].WhenUnsatisfiable = DoNotSchedule }, duplicate, tsc + "[1]"},
	}
	runErrorCases(t, tests, validInstance, ValidateInstance)
}

func TestValidateInstanceUpdate(t *testing.T) {
	tests := []updateCase[*Instance]{
		{"bind an unbound instance", func(n, o *Instance) { o.Spec.NodeName = "" }, "", ""},
		{"add a toleration", func(n, _ *Instance) {
			n.Spec.Tolerations = append(n.Spec.Tolerations, Toleration{Key: "new", Operator: TolerationOpExists, Effect: TaintEffectNoExecute})
		}, "", ""},
		{"change labels", func(n, _ *Instance) { n.Labels = map[string]string{"x": "y"} }, "", ""},
		{"container image changed", func(n, _ *Instance) { n.Spec.Containers[0].Image = "registry.local/web:2.0" }, forbidden, "spec.containers"},
		{"container added", func(n, _ *Instance) {
			n.Spec.Containers = append(n.Spec.Containers, Container{Name: "more", Image: "i"})
		}, forbidden, "spec.containers"},
		{"nodeName changed once set", func(n, _ *Instance) { n.Spec.NodeName = "node-2" }, invalid, "spec.nodeName"},
		{"nodeName cleared", func(n, _ *Instance) { n.Spec.NodeName = "" }, invalid, "spec.nodeName"},
		{"toleration removed", func(n, _ *Instance) { n.Spec.Tolerations = n.Spec.Tolerations[1:] }, forbidden, "spec.tolerations"},
		{"toleration changed", func(n, _ *Instance) { n.Spec.Tolerations[0].Value = "api" }, forbidden, "spec.tolerations"},
		{"restartPolicy changed", func(n, _ *Instance) { n.Spec.RestartPolicy = RestartPolicyNever }, forbidden, "spec"},
		{"affinity changed", func(n, _ *Instance) { n.Spec.Affinity = nil }, forbidden, "spec"},
		{"nodeSelector changed", func(n, _ *Instance) { n.Spec.NodeSelector["skiff.dev/zone"] = "b" }, forbidden, "spec"},
		{"priority changed", func(n, _ *Instance) { n.Spec.Priority = ptrTo(int32(1)) }, forbidden, "spec"},
		{"grace period changed", func(n, _ *Instance) { n.Spec.TerminationGracePeriodSeconds = ptrTo(int64(5)) }, forbidden, "spec"},
		{"spread changed", func(n, _ *Instance) { n.Spec.TopologySpreadConstraints = nil }, forbidden, "spec"},
		{"new object invalid", func(n, _ *Instance) { n.Spec.NodeName = "Bad_Node" }, invalid, "spec.nodeName"},
		{"name changed", func(n, _ *Instance) { n.Name = "other" }, invalid, "metadata.name"},
	}
	runUpdateCases(t, tests, validInstance, ValidateInstanceUpdate)
}

func TestValidateInstanceStatusUpdate(t *testing.T) {
	tests := []updateCase[*Instance]{
		{"valid status, qosClass set first time", func(n, _ *Instance) {
			n.Status = InstanceStatus{
				Phase:             InstanceRunning,
				Conditions:        []metav1.Condition{condition(InstanceScheduled, metav1.ConditionTrue), condition(InstanceReady, metav1.ConditionFalse)},
				ContainerStatuses: []ContainerStatus{{Name: "web", RestartCount: 2}},
				QOSClass:          QOSBurstable,
			}
		}, "", ""},
		{"phase unknown", func(n, _ *Instance) { n.Status.Phase = "Exploded" }, notSupported, "status.phase"},
		{"addresses", func(n, _ *Instance) { n.Status.HostIP, n.Status.InstanceIP = "10.0.0.1", "10.88.3.7" }, "", ""},
		{"instanceIP not an IP", func(n, _ *Instance) { n.Status.InstanceIP = "10.88.3" }, invalid, "status.instanceIP"},
		{"hostIP not an IP", func(n, _ *Instance) { n.Status.HostIP = "node-1" }, invalid, "status.hostIP"},
		{"restartCount negative", func(n, _ *Instance) { n.Status.ContainerStatuses = []ContainerStatus{{Name: "web", RestartCount: -1}} }, invalid, "status.containerStatuses[0].restartCount"},
		{"qosClass changed", func(n, o *Instance) { o.Status.QOSClass, n.Status.QOSClass = QOSBurstable, QOSGuaranteed }, invalid, "status.qosClass"},
		{"qosClass cleared", func(n, o *Instance) { o.Status.QOSClass, n.Status.QOSClass = QOSBurstable, "" }, invalid, "status.qosClass"},
		{"qosClass unknown", func(n, _ *Instance) { n.Status.QOSClass = "Platinum" }, notSupported, "status.qosClass"},
		{"condition status unknown value", func(n, _ *Instance) { n.Status.Conditions = []metav1.Condition{condition(InstanceReady, "Yes")} }, notSupported, "status.conditions[0].status"},
		{"condition without reason", func(n, _ *Instance) {
			c := condition(InstanceReady, metav1.ConditionTrue)
			c.Reason = ""
			n.Status.Conditions = []metav1.Condition{c}
		}, required, "status.conditions[0].reason"},
		{"uid changed", func(n, o *Instance) { o.UID, n.UID = "a", "b" }, invalid, "metadata.uid"},
	}
	runUpdateCases(t, tests, validInstance, ValidateInstanceStatusUpdate)
}

func TestValidateNode(t *testing.T) {
	tests := []errorCase[*Node]{
		{"name not a DNS subdomain", func(n *Node) { n.Name = "Node_1" }, invalid, "metadata.name"},
		{"namespace set", func(n *Node) { n.Namespace = "default" }, forbidden, "metadata.namespace"},
		{"taint key missing", func(n *Node) { n.Spec.Taints[0].Key = "" }, required, "spec.taints[0].key"},
		{"taint key invalid", func(n *Node) { n.Spec.Taints[0].Key = "bad key" }, invalid, "spec.taints[0].key"},
		{"taint value invalid", func(n *Node) { n.Spec.Taints[0].Value = "bad value" }, invalid, "spec.taints[0].value"},
		{"taint effect missing", func(n *Node) { n.Spec.Taints[0].Effect = "" }, required, "spec.taints[0].effect"},
		{"taint effect unknown", func(n *Node) { n.Spec.Taints[0].Effect = "NoRun" }, notSupported, "spec.taints[0].effect"},
		{"taint key and effect duplicate", func(n *Node) { n.Spec.Taints[1].Effect = TaintEffectNoSchedule }, duplicate, "spec.taints[1]"},
		{"publicKey not base64", func(n *Node) { n.Spec.PublicKey = "not base64!" }, invalid, "spec.publicKey"},
		{"publicKey URL-safe base64", func(n *Node) { n.Spec.PublicKey = base64.URLEncoding.EncodeToString(make([]byte, 32)) + "-_" }, invalid, "spec.publicKey"},
		{"publicKey wrong length", func(n *Node) { n.Spec.PublicKey = base64.StdEncoding.EncodeToString(make([]byte, 31)) }, invalid, "spec.publicKey"},
		{"instanceCIDR not a CIDR", func(n *Node) { n.Spec.InstanceCIDR = "10.88.3.0" }, invalid, "spec.instanceCIDR"},
		{"instanceCIDR not the network address", func(n *Node) { n.Spec.InstanceCIDR = "10.88.3.1/24" }, invalid, "spec.instanceCIDR"},
		{"instanceCIDR IPv6", func(n *Node) { n.Spec.InstanceCIDR = "fd00::/64" }, invalid, "spec.instanceCIDR"},
		{"instanceCIDR too small", func(n *Node) { n.Spec.InstanceCIDR = "10.88.3.0/30" }, invalid, "spec.instanceCIDR"},
	}
	runErrorCases(t, tests, validNode, ValidateNode)
}

func TestValidateNodeUpdate(t *testing.T) {
	tests := []updateCase[*Node]{
		{"register a key", func(n, o *Node) { o.Spec.PublicKey = "" }, "", ""},
		{"cordon and taint", func(n, _ *Node) {
			n.Spec.Unschedulable = true
			n.Spec.Taints = append(n.Spec.Taints, Taint{Key: "drain", Effect: TaintEffectNoExecute})
		}, "", ""},
		{"publicKey changed", func(n, _ *Node) { n.Spec.PublicKey = testPublicKey(2) }, invalid, "spec.publicKey"},
		{"publicKey cleared", func(n, _ *Node) { n.Spec.PublicKey = "" }, invalid, "spec.publicKey"},
		{"instanceCIDR given", func(n, o *Node) { o.Spec.InstanceCIDR = "" }, "", ""},
		{"instanceCIDR changed", func(n, _ *Node) { n.Spec.InstanceCIDR = "10.88.4.0/24" }, invalid, "spec.instanceCIDR"},
		{"instanceCIDR cleared", func(n, _ *Node) { n.Spec.InstanceCIDR = "" }, invalid, "spec.instanceCIDR"},
		{"new object invalid", func(n, _ *Node) { n.Spec.Taints[0].Effect = "" }, required, "spec.taints[0].effect"},
		{"name changed", func(n, _ *Node) { n.Name = "node-2" }, invalid, "metadata.name"},
	}
	runUpdateCases(t, tests, validNode, ValidateNodeUpdate)
}

func TestValidateNodeStatusUpdate(t *testing.T) {
	tests := []updateCase[*Node]{
		{"valid status", func(n, _ *Node) {
			n.Status = NodeStatus{
				Phase:       NodeReady,
				Conditions:  []metav1.Condition{condition(NodeConditionReady, metav1.ConditionTrue), condition(NodeConditionMemberAlive, metav1.ConditionTrue)},
				Capacity:    resources("cpu", "8", "memory", "32Gi", "skiff.dev/gpu", "2"),
				Allocatable: resources("cpu", "7500m", "memory", "30Gi"),
				Addresses:   []NodeAddress{{Type: NodeHostName, Address: "node-1"}, {Type: NodeInternalIP, Address: "10.0.0.1"}, {Type: NodeExternalIP, Address: "203.0.113.1"}},
			}
		}, "", ""},
		{"phase unknown", func(n, _ *Node) { n.Status.Phase = "Sleeping" }, notSupported, "status.phase"},
		{"capacity negative", func(n, _ *Node) { n.Status.Capacity = resources("cpu", "-1") }, invalid, "status.capacity[cpu]"},
		{"allocatable above capacity", func(n, _ *Node) {
			n.Status.Capacity, n.Status.Allocatable = resources("cpu", "2"), resources("cpu", "3")
		}, invalid, "status.allocatable[cpu]"},
		{"capacity beyond int64 milli-units", func(n, _ *Node) { n.Status.Capacity = resources("cpu", "1e400") }, invalid, "status.capacity[cpu]"},
		{"allocatable negative", func(n, _ *Node) { n.Status.Allocatable = resources("memory", "-1Gi") }, invalid, "status.allocatable[memory]"},
		{"capacity name invalid", func(n, _ *Node) { n.Status.Capacity = resources("bad name", "1") }, invalid, "status.capacity[bad name]"},
		{"address type unknown", func(n, _ *Node) { n.Status.Addresses = []NodeAddress{{Type: "MAC", Address: "x"}} }, notSupported, "status.addresses[0].type"},
		{"address missing", func(n, _ *Node) { n.Status.Addresses = []NodeAddress{{Type: NodeInternalIP}} }, required, "status.addresses[0].address"},
		{"condition status unknown value", func(n, _ *Node) { n.Status.Conditions = []metav1.Condition{condition(NodeConditionReady, "No")} }, notSupported, "status.conditions[0].status"},
		{"name changed", func(n, _ *Node) { n.Name = "node-2" }, invalid, "metadata.name"},
		{"agent endpoint on its own address", func(n, _ *Node) { withEndpoint(n, "10.0.0.1:10250") }, "", ""},
		{"agent endpoint on loopback", func(n, _ *Node) { withEndpoint(n, "127.0.0.1:10250") }, "", ""},
		{"agent endpoint on another host", func(n, _ *Node) { withEndpoint(n, "192.0.2.7:10250") }, invalid, "status.agentEndpoint"},
		{"agent endpoint by name", func(n, _ *Node) { withEndpoint(n, "node-1:10250") }, invalid, "status.agentEndpoint"},
		{"agent endpoint junk", func(n, _ *Node) { withEndpoint(n, "http://[::1") }, invalid, "status.agentEndpoint"},
		{"agent endpoint without a port", func(n, _ *Node) { withEndpoint(n, "10.0.0.1") }, invalid, "status.agentEndpoint"},
		{"agent endpoint port 0", func(n, _ *Node) { withEndpoint(n, "10.0.0.1:0") }, invalid, "status.agentEndpoint"},
		{"agent endpoint port too high", func(n, _ *Node) { withEndpoint(n, "10.0.0.1:70000") }, invalid, "status.agentEndpoint"},
	}
	runUpdateCases(t, tests, validNode, ValidateNodeStatusUpdate)
}

func withEndpoint(n *Node, endpoint string) {
	n.Status.Addresses = []NodeAddress{{Type: NodeHostName, Address: "node-1"}, {Type: NodeInternalIP, Address: "10.0.0.1"}}
	n.Status.AgentEndpoint = endpoint
}

func runErrorCases[T any](t *testing.T, tests []errorCase[T], valid func() T, validate func(T) field.ErrorList) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := valid()
			tt.mutate(obj)
			wantError(t, validate(obj), tt.typ, tt.path)
		})
	}
}

func runUpdateCases[T any](t *testing.T, tests []updateCase[T], valid func() T, validate func(newObj, oldObj T) field.ErrorList) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			newObj, oldObj := valid(), valid()
			// Updates carry the resourceVersion they were read at.
			for _, obj := range []T{newObj, oldObj} {
				any(obj).(metav1.Object).SetResourceVersion("1")
			}
			tt.mutate(newObj, oldObj)
			errs := validate(newObj, oldObj)
			if tt.typ == "" {
				wantNoErrors(t, errs)
				return
			}
			wantError(t, errs, tt.typ, tt.path)
		})
	}
}

func TestDefaultPullPolicy(t *testing.T) {
	for image, want := range map[string]PullPolicy{
		"busybox":                        PullAlways,
		"busybox:latest":                 PullAlways,
		"busybox:1.36":                   PullIfNotPresent,
		"registry.local:5000/web":        PullAlways,
		"registry.local:5000/web:1.0":    PullIfNotPresent,
		"registry.local:5000/web:latest": PullAlways,
		"web@sha256:0123":                PullIfNotPresent,
		"web:latest@sha256:0123":         PullIfNotPresent,
	} {
		if got := DefaultPullPolicy(image); got != want {
			t.Errorf("DefaultPullPolicy(%q) = %s, want %s", image, got, want)
		}
	}
}
