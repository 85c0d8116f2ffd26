package v1alpha1

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func resources(kv ...string) corev1.ResourceList {
	list := corev1.ResourceList{}
	for i := 0; i+1 < len(kv); i += 2 {
		list[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return list
}

func TestSetDefaultsWorkload(t *testing.T) {
	pct := func(s string) *intstr.IntOrString { v := intstr.FromString(s); return &v }
	num := func(n int) *intstr.IntOrString { v := intstr.FromInt32(int32(n)); return &v }
	tests := []struct {
		name  string
		in    WorkloadSpec
		check func(t *testing.T, spec *WorkloadSpec)
	}{
		{"replicas default to 1", WorkloadSpec{}, func(t *testing.T, s *WorkloadSpec) {
			assertEqual(t, ptrTo(int32(1)), s.Replicas)
		}},
		{"explicit replicas kept, zero included", WorkloadSpec{Replicas: ptrTo(int32(0))}, func(t *testing.T, s *WorkloadSpec) {
			assertEqual(t, ptrTo(int32(0)), s.Replicas)
		}},
		{"strategy defaults to RollingUpdate 25%/25%", WorkloadSpec{}, func(t *testing.T, s *WorkloadSpec) {
			assertEqual(t, WorkloadStrategy{Type: RollingUpdateStrategy, RollingUpdate: &RollingUpdate{MaxSurge: pct("25%"), MaxUnavailable: pct("25%")}}, s.Strategy)
		}},
		{"partial rollingUpdate gets the missing bound", WorkloadSpec{Strategy: WorkloadStrategy{RollingUpdate: &RollingUpdate{MaxSurge: num(2)}}}, func(t *testing.T, s *WorkloadSpec) {
			assertEqual(t, &RollingUpdate{MaxSurge: num(2), MaxUnavailable: pct("25%")}, s.Strategy.RollingUpdate)
		}},
		{"Recreate gets no rollingUpdate", WorkloadSpec{Strategy: WorkloadStrategy{Type: RecreateStrategy}}, func(t *testing.T, s *WorkloadSpec) {
			assertEqual(t, WorkloadStrategy{Type: RecreateStrategy}, s.Strategy)
		}},
		{"progressDeadlineSeconds defaults to 600", WorkloadSpec{}, func(t *testing.T, s *WorkloadSpec) {
			assertEqual(t, ptrTo(int32(600)), s.ProgressDeadlineSeconds)
		}},
		{"selector defaults to template labels", WorkloadSpec{Template: InstanceTemplate{Metadata: TemplateMetadata{Labels: map[string]string{"app": "web"}}}}, func(t *testing.T, s *WorkloadSpec) {
			assertEqual(t, &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, s.Selector)
			s.Selector.MatchLabels["app"] = "changed"
			assertEqual(t, "web", s.Template.Metadata.Labels["app"]) // a copy, not the template's map
		}},
		{"explicit selector not overridden", WorkloadSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "front"}},
			Template: InstanceTemplate{Metadata: TemplateMetadata{Labels: map[string]string{"app": "web", "tier": "front"}}},
		}, func(t *testing.T, s *WorkloadSpec) {
			assertEqual(t, &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "front"}}, s.Selector)
		}},
		{"no labels, no selector", WorkloadSpec{}, func(t *testing.T, s *WorkloadSpec) {
			assertEqual(t, (*metav1.LabelSelector)(nil), s.Selector)
		}},
		{"template spec defaulted", WorkloadSpec{Template: InstanceTemplate{Spec: InstanceTemplateSpec{Containers: []Container{{Name: "c", Ports: []ContainerPort{{ContainerPort: 80}}}}}}}, func(t *testing.T, s *WorkloadSpec) {
			assertEqual(t, RestartPolicyAlways, s.Template.Spec.RestartPolicy)
			assertEqual(t, ProtocolTCP, s.Template.Spec.Containers[0].Ports[0].Protocol)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &Workload{Spec: tt.in}
			SetDefaults_Workload(w)
			tt.check(t, &w.Spec)
		})
	}
}

func TestSetDefaultsInstanceTemplateSpec(t *testing.T) {
	tests := []struct {
		name  string
		in    InstanceTemplateSpec
		check func(t *testing.T, spec *InstanceTemplateSpec)
	}{
		{"restartPolicy defaults to Always", InstanceTemplateSpec{}, func(t *testing.T, s *InstanceTemplateSpec) {
			assertEqual(t, RestartPolicyAlways, s.RestartPolicy)
		}},
		{"explicit restartPolicy kept", InstanceTemplateSpec{RestartPolicy: RestartPolicyNever}, func(t *testing.T, s *InstanceTemplateSpec) {
			assertEqual(t, RestartPolicyNever, s.RestartPolicy)
		}},
		{"grace period defaults to 30", InstanceTemplateSpec{}, func(t *testing.T, s *InstanceTemplateSpec) {
			assertEqual(t, ptrTo(int64(30)), s.TerminationGracePeriodSeconds)
		}},
		{"explicit zero grace period kept", InstanceTemplateSpec{TerminationGracePeriodSeconds: ptrTo(int64(0))}, func(t *testing.T, s *InstanceTemplateSpec) {
			assertEqual(t, ptrTo(int64(0)), s.TerminationGracePeriodSeconds)
		}},
		{"port protocol defaults to TCP, explicit kept", InstanceTemplateSpec{Containers: []Container{{Ports: []ContainerPort{{ContainerPort: 80}, {ContainerPort: 53, Protocol: ProtocolUDP}}}}}, func(t *testing.T, s *InstanceTemplateSpec) {
			assertEqual(t, []ContainerPort{{ContainerPort: 80, Protocol: ProtocolTCP}, {ContainerPort: 53, Protocol: ProtocolUDP}}, s.Containers[0].Ports)
		}},
		{"toleration operator defaults to Equal when keyed", InstanceTemplateSpec{Tolerations: []Toleration{{Key: "k", Value: "v"}, {Operator: TolerationOpExists}, {}}}, func(t *testing.T, s *InstanceTemplateSpec) {
			assertEqual(t, []Toleration{{Key: "k", Operator: TolerationOpEqual, Value: "v"}, {Operator: TolerationOpExists}, {}}, s.Tolerations)
		}},
		{"requests default to limits", InstanceTemplateSpec{Containers: []Container{{Resources: ResourceRequirements{Limits: resources("cpu", "2", "memory", "1Gi")}}}}, func(t *testing.T, s *InstanceTemplateSpec) {
			assertEqual(t, resources("cpu", "2", "memory", "1Gi"), s.Containers[0].Resources.Requests)
		}},
		{"explicit request kept, missing one from limit", InstanceTemplateSpec{Containers: []Container{{Resources: ResourceRequirements{
			Requests: resources("cpu", "500m"),
			Limits:   resources("cpu", "2", "skiff.dev/gpu", "1"),
		}}}}, func(t *testing.T, s *InstanceTemplateSpec) {
			assertEqual(t, resources("cpu", "500m", "skiff.dev/gpu", "1"), s.Containers[0].Resources.Requests)
		}},
		{"no limits, no requests", InstanceTemplateSpec{Containers: []Container{{}}}, func(t *testing.T, s *InstanceTemplateSpec) {
			assertEqual(t, corev1.ResourceList(nil), s.Containers[0].Resources.Requests)
		}},
		{"configMap and secret volumes get mode 0644", InstanceTemplateSpec{Volumes: []Volume{
			{Name: "c", VolumeSource: VolumeSource{ConfigMap: &ConfigMapVolumeSource{Name: "c", Items: []KeyToPath{{Key: "k", Path: "p"}}}}},
			{Name: "s", VolumeSource: VolumeSource{Secret: &SecretVolumeSource{SecretName: "s"}}},
		}}, func(t *testing.T, s *InstanceTemplateSpec) {
			assertEqual(t, ptrTo(int32(0o644)), s.Volumes[0].ConfigMap.DefaultMode)
			assertEqual(t, ptrTo(int32(0o644)), s.Volumes[1].Secret.DefaultMode)
			// Items keep no mode of their own: they take defaultMode.
			assertEqual(t, (*int32)(nil), s.Volumes[0].ConfigMap.Items[0].Mode)
		}},
		{"explicit defaultMode kept, zero included", InstanceTemplateSpec{Volumes: []Volume{
			{Name: "c", VolumeSource: VolumeSource{ConfigMap: &ConfigMapVolumeSource{Name: "c", DefaultMode: ptrTo(int32(0))}}},
			{Name: "s", VolumeSource: VolumeSource{Secret: &SecretVolumeSource{SecretName: "s", DefaultMode: ptrTo(int32(0o400))}}},
		}}, func(t *testing.T, s *InstanceTemplateSpec) {
			assertEqual(t, ptrTo(int32(0)), s.Volumes[0].ConfigMap.DefaultMode)
			assertEqual(t, ptrTo(int32(0o400)), s.Volumes[1].Secret.DefaultMode)
		}},
		{"hostPath and emptyDir volumes left as written", InstanceTemplateSpec{Volumes: []Volume{
			{Name: "h", VolumeSource: VolumeSource{HostPath: &HostPathVolumeSource{Path: "/var/log"}}},
			{Name: "e", VolumeSource: VolumeSource{EmptyDir: &EmptyDirVolumeSource{}}},
		}}, func(t *testing.T, s *InstanceTemplateSpec) {
			assertEqual(t, []Volume{
				{Name: "h", VolumeSource: VolumeSource{HostPath: &HostPathVolumeSource{Path: "/var/log"}}},
				{Name: "e", VolumeSource: VolumeSource{EmptyDir: &EmptyDirVolumeSource{}}},
			}, s.Volumes)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := tt.in.DeepCopy()
			SetDefaults_InstanceTemplateSpec(spec)
			tt.check(t, spec)
		})
	}
}

func TestSetDefaultsInstance(t *testing.T) {
	i := &Instance{Spec: InstanceSpec{InstanceTemplateSpec: InstanceTemplateSpec{Containers: []Container{{Name: "c"}}}}}
	SetDefaults_Instance(i)
	assertEqual(t, RestartPolicyAlways, i.Spec.RestartPolicy)
	assertEqual(t, ptrTo(int64(30)), i.Spec.TerminationGracePeriodSeconds)
	assertEqual(t, []Toleration{{Key: TaintUnreachable, Operator: TolerationOpExists, Effect: TaintEffectNoExecute, TolerationSeconds: ptrTo(int64(300))}}, i.Spec.Tolerations)

	// An Instance that already tolerates the taint keeps its own terms.
	for _, own := range []Toleration{
		{Key: TaintUnreachable, Operator: TolerationOpExists, Effect: TaintEffectNoExecute, TolerationSeconds: ptrTo(int64(60))},
		{Key: TaintUnreachable, Operator: TolerationOpExists},
		{Operator: TolerationOpExists},
	} {
		i := &Instance{Spec: InstanceSpec{InstanceTemplateSpec: InstanceTemplateSpec{Tolerations: []Toleration{own}}}}
		SetDefaults_Instance(i)
		assertEqual(t, 1, len(i.Spec.Tolerations))
	}
	// A template is left as written.
	spec := &InstanceTemplateSpec{}
	SetDefaults_InstanceTemplateSpec(spec)
	assertEqual(t, 0, len(spec.Tolerations))

	// With hostNetwork the container ports are the node's: published.
	ports := []ContainerPort{{ContainerPort: 8080}, {ContainerPort: 53, HostPort: 53, Protocol: ProtocolUDP}}
	host := &Instance{Spec: InstanceSpec{InstanceTemplateSpec: InstanceTemplateSpec{HostNetwork: true, Containers: []Container{{Name: "c", Ports: ports}}}}}
	SetDefaults_Instance(host)
	assertEqual(t, []ContainerPort{{ContainerPort: 8080, HostPort: 8080, Protocol: ProtocolTCP}, {ContainerPort: 53, HostPort: 53, Protocol: ProtocolUDP}}, host.Spec.Containers[0].Ports)
	own := &Instance{Spec: InstanceSpec{InstanceTemplateSpec: InstanceTemplateSpec{Containers: []Container{{Name: "c", Ports: []ContainerPort{{ContainerPort: 8080}}}}}}}
	SetDefaults_Instance(own)
	assertEqual(t, int32(0), own.Spec.Containers[0].Ports[0].HostPort)
}

func TestComputeQOSClass(t *testing.T) {
	res := func(requests, limits corev1.ResourceList) Container {
		return Container{Resources: ResourceRequirements{Requests: requests, Limits: limits}}
	}
	tests := []struct {
		name       string
		containers []Container
		want       QOSClass
	}{
		{"nothing set", []Container{{}}, QOSBestEffort},
		{"no containers", nil, QOSBestEffort},
		{"only extended resources", []Container{res(resources("skiff.dev/gpu", "1"), resources("skiff.dev/gpu", "1"))}, QOSBestEffort},
		{"zero quantities count as unset", []Container{res(resources("cpu", "0"), nil)}, QOSBestEffort},
		{"request only", []Container{res(resources("cpu", "100m"), nil)}, QOSBurstable},
		{"requests below limits", []Container{res(resources("cpu", "1", "memory", "1Gi"), resources("cpu", "2", "memory", "1Gi"))}, QOSBurstable},
		{"cpu limit only", []Container{res(nil, resources("cpu", "1"))}, QOSBurstable},
		{"requests equal limits", []Container{res(resources("cpu", "1", "memory", "1Gi"), resources("cpu", "1", "memory", "1Gi"))}, QOSGuaranteed},
		{"equal in another unit", []Container{res(resources("cpu", "1000m", "memory", "1024Mi"), resources("cpu", "1", "memory", "1Gi"))}, QOSGuaranteed},
		{"limits only (missing requests equal limits)", []Container{res(nil, resources("cpu", "1", "memory", "1Gi"))}, QOSGuaranteed},
		{"explicit zero request under a limit", []Container{res(resources("cpu", "0"), resources("cpu", "1", "memory", "1Gi"))}, QOSBurstable},
		{"guaranteed and best-effort mix", []Container{res(nil, resources("cpu", "1", "memory", "1Gi")), {}}, QOSBurstable},
		{"guaranteed and burstable mix", []Container{res(nil, resources("cpu", "1", "memory", "1Gi")), res(resources("memory", "1Gi"), nil)}, QOSBurstable},
		{"all guaranteed", []Container{res(nil, resources("cpu", "1", "memory", "1Gi")), res(resources("cpu", "2", "memory", "2Gi"), resources("cpu", "2", "memory", "2Gi"))}, QOSGuaranteed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ComputeQOSClass(&InstanceTemplateSpec{Containers: tt.containers})
			if got != tt.want {
				t.Errorf("ComputeQOSClass() = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestSchemeDefaulting checks that AddToScheme registers the defaulters, so
// that the apiserver's decode applies them to every kind and list.
func TestSchemeDefaulting(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	templated := InstanceTemplateSpec{Containers: []Container{{Name: "c", Image: "busybox"}}}

	w := &Workload{Spec: WorkloadSpec{Template: InstanceTemplate{Spec: *templated.DeepCopy()}}}
	w.Spec.Template.Spec.Volumes = []Volume{{Name: "c", VolumeSource: VolumeSource{ConfigMap: &ConfigMapVolumeSource{Name: "c"}}}}
	scheme.Default(w)
	assertEqual(t, ptrTo(int32(1)), w.Spec.Replicas)
	assertEqual(t, RestartPolicyAlways, w.Spec.Template.Spec.RestartPolicy)
	assertEqual(t, ptrTo(DefaultVolumeMode), w.Spec.Template.Spec.Volumes[0].ConfigMap.DefaultMode)

	wl := &WorkloadList{Items: []Workload{{}, {}}}
	scheme.Default(wl)
	for i := range wl.Items {
		assertEqual(t, RollingUpdateStrategy, wl.Items[i].Spec.Strategy.Type)
	}

	inst := &Instance{Spec: InstanceSpec{InstanceTemplateSpec: *templated.DeepCopy()}}
	inst.Spec.Volumes = []Volume{{Name: "s", VolumeSource: VolumeSource{Secret: &SecretVolumeSource{SecretName: "s"}}}}
	scheme.Default(inst)
	assertEqual(t, ptrTo(int64(30)), inst.Spec.TerminationGracePeriodSeconds)
	assertEqual(t, ptrTo(DefaultVolumeMode), inst.Spec.Volumes[0].Secret.DefaultMode)

	il := &InstanceList{Items: []Instance{{}}}
	scheme.Default(il)
	assertEqual(t, RestartPolicyAlways, il.Items[0].Spec.RestartPolicy)

	// Node has no defaults yet; defaulting must leave it alone.
	n := &Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}
	scheme.Default(n)
	assertEqual(t, &Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, n)
	scheme.Default(&NodeList{Items: []Node{{}}})
}

func assertEqual[T any](t *testing.T, want, got T) {
	t.Helper()
	if !apiequality.Semantic.DeepEqual(want, got) {
		t.Errorf("mismatch (-want +got):\n%s", cmp.Diff(want, got))
	}
}
