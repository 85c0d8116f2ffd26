package apiserver

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/identity"
)

// TestNodesReadOnlyReferencedSecrets: a node gets, by name, exactly the
// Secrets and ConfigMaps that Instances bound to it reference; any other,
// another node's, or a list is forbidden.
func TestNodesReadOnlyReferencedSecrets(t *testing.T) {
	ts := startTestServer(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin := kubernetes.NewForConfigOrDie(ts.cfg)
	nodes := map[string]*kubernetes.Clientset{}
	for _, name := range []string{"a", "b"} {
		id, err := identity.New()
		if err != nil {
			t.Fatal(err)
		}
		n := &skiffv1alpha1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: skiffv1alpha1.NodeSpec{PublicKey: id.PublicKeyString()}}
		if err := ts.client.Create(ctx, n); err != nil {
			t.Fatal(err)
		}
		certPEM, _ := id.ClientCertificate(skiffv1alpha1.NodeUserPrefix+name, time.Now())
		keyPEM, _ := id.KeyPEM()
		cfg := rest.AnonymousClientConfig(ts.cfg)
		cfg.CertData, cfg.KeyData = certPEM, keyPEM
		nodes[name] = kubernetes.NewForConfigOrDie(cfg)
	}
	for _, name := range []string{"db", "files", "unused"} {
		if _, err := admin.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, StringData: map[string]string{"password": "p"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	inst := newInstance("app")
	inst.Spec.NodeName = "a"
	inst.Spec.Containers[0].Env = []skiffv1alpha1.EnvVar{{Name: "PASSWORD", ValueFrom: &skiffv1alpha1.EnvVarSource{
		SecretKeyRef: &skiffv1alpha1.SecretKeySelector{Name: "db", Key: "password"},
	}}}
	inst.Spec.Containers[0].EnvFrom = []skiffv1alpha1.EnvFromSource{{ConfigMapRef: &skiffv1alpha1.ConfigMapEnvSource{Name: "db"}}}
	// "files" only as volumes: a secret one and a configMap one.
	inst.Spec.Volumes = []skiffv1alpha1.Volume{
		{Name: "certs", VolumeSource: skiffv1alpha1.VolumeSource{Secret: &skiffv1alpha1.SecretVolumeSource{SecretName: "files"}}},
		{Name: "conf", VolumeSource: skiffv1alpha1.VolumeSource{ConfigMap: &skiffv1alpha1.ConfigMapVolumeSource{Name: "files"}}},
	}
	if err := ts.client.Create(ctx, inst); err != nil {
		t.Fatal(err)
	}

	// Wait until node a is trusted (the key index learns it by watching).
	for {
		_, err := nodes["a"].CoreV1().Secrets("default").Get(ctx, "db", metav1.GetOptions{})
		if err == nil {
			break
		}
		if !apierrors.IsUnauthorized(err) && !apierrors.IsForbidden(err) || ctx.Err() != nil {
			t.Fatalf("node a gets its Instance's secret: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := nodes["a"].CoreV1().ConfigMaps("default").Get(ctx, "db", metav1.GetOptions{}); err != nil {
		t.Errorf("node a gets its Instance's configmap: %v", err)
	}
	if _, err := nodes["a"].CoreV1().Secrets("default").Get(ctx, "files", metav1.GetOptions{}); err != nil {
		t.Errorf("node a gets its Instance's secret volume's secret: %v", err)
	}
	if _, err := nodes["a"].CoreV1().ConfigMaps("default").Get(ctx, "files", metav1.GetOptions{}); err != nil {
		t.Errorf("node a gets its Instance's configMap volume's configmap: %v", err)
	}
	for _, tc := range []struct {
		name string
		do   func() error
	}{
		{"node a gets an unreferenced secret", func() error {
			_, err := nodes["a"].CoreV1().Secrets("default").Get(ctx, "unused", metav1.GetOptions{})
			return err
		}},
		{"node a gets an unreferenced configmap", func() error {
			_, err := nodes["a"].CoreV1().ConfigMaps("default").Get(ctx, "unused", metav1.GetOptions{})
			return err
		}},
		{"node a lists secrets", func() error {
			_, err := nodes["a"].CoreV1().Secrets("default").List(ctx, metav1.ListOptions{})
			return err
		}},
		{"node b gets node a's Instance's secret", func() error {
			_, err := nodes["b"].CoreV1().Secrets("default").Get(ctx, "db", metav1.GetOptions{})
			return err
		}},
		{"node b gets node a's Instance's volume secret", func() error {
			_, err := nodes["b"].CoreV1().Secrets("default").Get(ctx, "files", metav1.GetOptions{})
			return err
		}},
		{"node a writes the secret", func() error {
			_, err := nodes["a"].CoreV1().Secrets("default").Update(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db"}}, metav1.UpdateOptions{})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.do(); !apierrors.IsForbidden(err) {
				t.Errorf("%v; want forbidden", err)
			}
		})
	}
}

// TestReferences: each way an Instance names a Secret or a ConfigMap
// counts for that kind only.
func TestReferences(t *testing.T) {
	secretVolume := skiffv1alpha1.Volume{Name: "v", VolumeSource: skiffv1alpha1.VolumeSource{Secret: &skiffv1alpha1.SecretVolumeSource{SecretName: "x"}}}
	configMapVolume := skiffv1alpha1.Volume{Name: "v", VolumeSource: skiffv1alpha1.VolumeSource{ConfigMap: &skiffv1alpha1.ConfigMapVolumeSource{Name: "x"}}}
	emptyDir := skiffv1alpha1.Volume{Name: "x", VolumeSource: skiffv1alpha1.VolumeSource{EmptyDir: &skiffv1alpha1.EmptyDirVolumeSource{}}}
	tests := []struct {
		name              string
		mutate            func(*skiffv1alpha1.InstanceTemplateSpec)
		secret, configMap bool
	}{
		{"nothing", func(*skiffv1alpha1.InstanceTemplateSpec) {}, false, false},
		{"image pull secret", func(s *skiffv1alpha1.InstanceTemplateSpec) {
			s.ImagePullSecrets = []skiffv1alpha1.LocalObjectReference{{Name: "x"}}
		}, true, false},
		{"env secretKeyRef", func(s *skiffv1alpha1.InstanceTemplateSpec) {
			s.Containers[0].Env = []skiffv1alpha1.EnvVar{{Name: "E", ValueFrom: &skiffv1alpha1.EnvVarSource{SecretKeyRef: &skiffv1alpha1.SecretKeySelector{Name: "x", Key: "k"}}}}
		}, true, false},
		{"init container envFrom configMapRef", func(s *skiffv1alpha1.InstanceTemplateSpec) {
			s.InitContainers = []skiffv1alpha1.Container{{Name: "init", EnvFrom: []skiffv1alpha1.EnvFromSource{{ConfigMapRef: &skiffv1alpha1.ConfigMapEnvSource{Name: "x"}}}}}
		}, false, true},
		{"secret volume", func(s *skiffv1alpha1.InstanceTemplateSpec) {
			s.Volumes = []skiffv1alpha1.Volume{emptyDir, secretVolume}
		}, true, false},
		{"configMap volume", func(s *skiffv1alpha1.InstanceTemplateSpec) {
			s.Volumes = []skiffv1alpha1.Volume{emptyDir, configMapVolume}
		}, false, true},
		{"volumes naming other objects", func(s *skiffv1alpha1.InstanceTemplateSpec) {
			other := []skiffv1alpha1.Volume{*secretVolume.DeepCopy(), *configMapVolume.DeepCopy()}
			other[0].Secret.SecretName, other[1].ConfigMap.Name = "y", "y"
			s.Volumes = append(other, emptyDir)
		}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := newInstance("app").Spec.InstanceTemplateSpec
			tt.mutate(&spec)
			if got := references(&spec, "secrets", "x"); got != tt.secret {
				t.Errorf("references secret x = %v, want %v", got, tt.secret)
			}
			if got := references(&spec, "configmaps", "x"); got != tt.configMap {
				t.Errorf("references configmap x = %v, want %v", got, tt.configMap)
			}
		})
	}
}
