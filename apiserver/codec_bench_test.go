package apiserver

import (
	"bytes"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/cbor"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/utils/ptr"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// BenchmarkInstanceCodec compares the JSON serializer skiff's clients,
// watches and storage use with apimachinery's CBOR serializer on a bound,
// Running Instance as the controllers and agents exchange it: the
// measurement behind keeping JSON (docs/performance.md).
func BenchmarkInstanceCodec(b *testing.B) {
	scheme := runtime.NewScheme()
	if err := skiffv1alpha1.AddToScheme(scheme); err != nil {
		b.Fatal(err)
	}
	inst := runningInstance()
	for _, c := range []struct {
		name string
		s    runtime.Serializer
	}{
		{"json", json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme, json.SerializerOptions{})},
		{"cbor", cbor.NewSerializer(scheme, scheme)},
	} {
		var buf bytes.Buffer
		if err := c.s.Encode(inst, &buf); err != nil {
			b.Fatal(err)
		}
		data := buf.Bytes()
		b.Run(c.name+"/encode", func(b *testing.B) {
			b.ReportAllocs()
			var out bytes.Buffer
			for b.Loop() {
				out.Reset()
				if err := c.s.Encode(inst, &out); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(data)), "bytes/object")
		})
		b.Run(c.name+"/decode", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := c.s.Decode(data, nil, &skiffv1alpha1.Instance{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func runningInstance() *skiffv1alpha1.Instance {
	now := metav1.Now()
	inst := &skiffv1alpha1.Instance{
		TypeMeta: metav1.TypeMeta{APIVersion: "skiff.dev/v1alpha1", Kind: "Instance"},
		ObjectMeta: metav1.ObjectMeta{
			Name: "web-7d4b9c-x2k9q", Namespace: "default", UID: "0b5f3c1e-8a6d-4e0f-9b7a-2f1c3d4e5f60",
			ResourceVersion: "123456", Generation: 1, CreationTimestamp: now,
			Labels:     map[string]string{"app": "web", skiffv1alpha1.RevisionLabel: "7d4b9c"},
			Finalizers: []string{skiffv1alpha1.AgentFinalizer},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "skiff.dev/v1alpha1", Kind: "Workload", Name: "web",
				UID: "5a6b7c8d-1e2f-4a3b-8c9d-0e1f2a3b4c5d", Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}},
			ManagedFields: []metav1.ManagedFieldsEntry{
				{Manager: "skiff-workload", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "skiff.dev/v1alpha1", Time: &now, FieldsType: "FieldsV1",
					FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:labels":{".":{},"f:app":{}},"f:ownerReferences":{}},"f:spec":{"f:containers":{}}}`)}},
				{Manager: "skiff-agent", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "skiff.dev/v1alpha1", Time: &now, FieldsType: "FieldsV1", Subresource: "status",
					FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:status":{"f:containerStatuses":{},"f:phase":{},"f:instanceIP":{}}}`)}},
			},
		},
		Spec: skiffv1alpha1.InstanceSpec{
			NodeName: "node-17",
			InstanceTemplateSpec: skiffv1alpha1.InstanceTemplateSpec{Containers: []skiffv1alpha1.Container{{
				Name: "main", Image: "registry.local/web:1.4.2", Args: []string{"--port", "8080"},
				Ports: []skiffv1alpha1.ContainerPort{{ContainerPort: 8080}},
				Resources: skiffv1alpha1.ResourceRequirements{
					Requests: corev1.ResourceList{"cpu": resource.MustParse("100m"), "memory": resource.MustParse("64Mi")},
					Limits:   corev1.ResourceList{"cpu": resource.MustParse("1"), "memory": resource.MustParse("128Mi")},
				},
			}}},
		},
		Status: skiffv1alpha1.InstanceStatus{
			Phase: skiffv1alpha1.InstanceRunning, QOSClass: skiffv1alpha1.QOSBurstable,
			HostIP: "10.0.0.17", InstanceIP: "10.244.17.5",
			ContainerStatuses: []skiffv1alpha1.ContainerStatus{{
				Name: "main", ContainerID: "runc://0b5f3c1e-8a6d-4e0f-9b7a-2f1c3d4e5f60-main", Ready: true, Started: ptr.To(true),
				Image: "registry.local/web:1.4.2", ImageID: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
				State: skiffv1alpha1.ContainerState{Running: &skiffv1alpha1.ContainerStateRunning{StartedAt: now}},
			}},
			Conditions: []metav1.Condition{
				{Type: skiffv1alpha1.InstanceScheduled, Status: metav1.ConditionTrue, Reason: "Bound", Message: `bound to node "node-17"`, LastTransitionTime: now},
				{Type: skiffv1alpha1.InstanceReady, Status: metav1.ConditionTrue, Reason: "ContainersReady", LastTransitionTime: now},
			},
		},
	}
	skiffv1alpha1.SetDefaults_Instance(inst)
	return inst
}
