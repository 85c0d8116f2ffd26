package nodeagent

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/nodeagent/image"
)

func TestPullPolicy(t *testing.T) {
	for _, tc := range []struct {
		image  string
		policy skiffv1alpha1.PullPolicy
		want   image.PullPolicy
	}{
		{"busybox:1.36", skiffv1alpha1.PullAlways, image.Always},
		{"busybox", skiffv1alpha1.PullIfNotPresent, image.IfNotPresent},
		{"busybox", skiffv1alpha1.PullNever, image.Never},
		// Stored before the API defaulted the field.
		{"busybox", "", image.Always},
		{"busybox:latest", "", image.Always},
		{"busybox:1.36", "", image.IfNotPresent},
	} {
		c := &skiffv1alpha1.Container{Image: tc.image, ImagePullPolicy: tc.policy}
		if got := pullPolicy(c); got != tc.want {
			t.Errorf("pullPolicy(%s, %q) = %d, want %d", tc.image, tc.policy, got, tc.want)
		}
	}
}

const pullPassword = "pull-pw-value"

func dockerConfigSecret(name, registry, user string) *corev1.Secret {
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pullPassword))
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: fmt.Appendf(nil, `{"auths": {%q: {"auth": %q}}}`, registry, auth)},
	}
}

func withPullSecrets(names ...string) *skiffv1alpha1.Instance {
	inst := boundInstance("web", "n1")
	for _, n := range names {
		inst.Spec.ImagePullSecrets = append(inst.Spec.ImagePullSecrets, skiffv1alpha1.LocalObjectReference{Name: n})
	}
	return inst
}

// TestReadPullSecrets: dockerconfigjson and dockercfg Secrets give their
// credentials, others none; a missing Secret is named, not an error; a
// Secret that is no docker config is, without showing what it holds.
func TestReadPullSecrets(t *testing.T) {
	legacy := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "legacy"},
		Type:       corev1.SecretTypeDockercfg,
		Data:       map[string][]byte{corev1.DockerConfigKey: []byte(`{"quay.io": {"username": "q", "password": "` + pullPassword + `"}}`)},
	}
	opaque := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "opaque"},
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte("not read")},
	}
	broken := dockerConfigSecret("broken", "ghcr.io", "b")
	broken.Data[corev1.DockerConfigJsonKey] = []byte(`{"auths": {"ghcr.io": {"password": ` + pullPassword + `}}}`)
	other := dockerConfigSecret("other", "ghcr.io", "o")
	other.Namespace = "elsewhere"
	reader := fakeSources(t, dockerConfigSecret("hub", "https://index.docker.io/v1/", "h"), legacy, opaque, broken, other)

	keyring, missing, err := readPullSecrets(context.Background(), reader, withPullSecrets("hub", "absent", "legacy", "opaque", "other"))
	if err != nil {
		t.Fatal(err)
	}
	if keyring.Len() != 2 || !slices.Equal(missing, []string{"absent", "other"}) {
		t.Errorf("keyring %v, missing %q; want 2 credentials, absent and other missing", keyring, missing)
	}

	_, _, err = readPullSecrets(context.Background(), reader, withPullSecrets("hub", "broken"))
	if err == nil || !strings.Contains(err.Error(), `default/broken`) || strings.Contains(err.Error(), pullPassword) {
		t.Errorf("error %v: want one naming default/broken without its content", err)
	}
}

// fakeStore answers Ensure with err, or an image, and records the
// options it was asked with.
type fakeStore struct {
	mu   sync.Mutex
	err  error
	opts []image.PullOptions
}

func (f *fakeStore) Ensure(ctx context.Context, ref string, opts image.PullOptions) (*image.Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opts = append(f.opts, opts)
	if f.err != nil {
		return nil, f.err
	}
	return &image.Image{Ref: ref, ID: ref + "@sha256:0"}, nil
}

func (f *fakeStore) asked() []image.PullOptions {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.opts)
}

// pullReconciler is a reconciler with store as its images, Secrets read
// from objs, and Events recorded in a fake API.
func pullReconciler(t *testing.T, store imageStore, objs ...client.Object) (*instanceReconciler, client.Client) {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, skiffv1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	api := fake.NewClientBuilder().WithScheme(scheme).Build()
	r := &instanceReconciler{client: api, sources: fakeSources(t, objs...), images: store, metrics: newMetrics(),
		backoff: Backoff{Base: time.Hour, Max: time.Hour}}
	return r, api
}

// warnings are the Warning Events about inst: reason -> messages.
func warnings(t *testing.T, api client.Client, inst *skiffv1alpha1.Instance) map[string][]string {
	t.Helper()
	var list corev1.EventList
	if err := api.List(context.Background(), &list); err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, e := range list.Items {
		if e.InvolvedObject.Name == inst.Name && e.Type == corev1.EventTypeWarning {
			out[e.Reason] = append(out[e.Reason], e.Message)
		}
	}
	return out
}

// TestImageNeverPull: a missing image with policy Never waits in
// ErrImageNeverPull with the kubelet's words, told once in an Event.
func TestImageNeverPull(t *testing.T) {
	store := &fakeStore{err: fmt.Errorf("image %q: %w", "app:v1", image.ErrNeverPull)}
	r, api := pullReconciler(t, store)
	inst := withPullSecrets("regcred")
	c := &inst.Spec.Containers[0]
	c.Image, c.ImagePullPolicy = "app:v1", skiffv1alpha1.PullNever
	ctx := context.Background()
	for range 2 {
		img, res := r.image(ctx, inst, "id", c, 0)
		if img != nil || res == nil || res.status.State.Waiting == nil {
			t.Fatalf("image() = %v, %+v; want a waiting container", img, res)
		}
		w := res.status.State.Waiting
		if want := `Container image "app:v1" is not present with pull policy of Never`; w.Reason != "ErrImageNeverPull" || w.Message != want {
			t.Errorf("waiting %s %q, want ErrImageNeverPull %q", w.Reason, w.Message, want)
		}
	}
	if got := warnings(t, api, inst); len(got["ErrImageNeverPull"]) != 1 || len(got) != 1 {
		t.Errorf("Warning Events %q, want one ErrImageNeverPull", got)
	}
	if asked := store.asked(); len(asked) != 2 || asked[0].Policy != image.Never || asked[0].Keyring != nil {
		t.Errorf("store asked with %+v, want Never and no Secrets read", asked)
	}
}

// TestImagePullSecrets: the store gets the credentials of the Secrets
// that exist; a missing one is a Warning Event (once) and the pull goes
// on; the registry's refusal is ErrImagePull, then ImagePullBackOff; no
// credential reaches a status or an Event.
func TestImagePullSecrets(t *testing.T) {
	store := &fakeStore{err: errors.New(`pull image "ghcr.io/me/app": GET https://ghcr.io/v2/me/app/manifests/latest: UNAUTHORIZED: authentication required`)}
	r, api := pullReconciler(t, store, dockerConfigSecret("regcred", "ghcr.io", "me"))
	inst := withPullSecrets("absent", "regcred")
	c := &inst.Spec.Containers[0]
	c.Image, c.ImagePullPolicy = "ghcr.io/me/app", skiffv1alpha1.PullAlways
	ctx := context.Background()

	// The failed pull shows as ErrImagePull for the first half of its
	// back-off (a second look at once still says so, without pulling),
	// then as ImagePullBackOff.
	var reasons []string
	for i := range 3 {
		if i == 2 {
			r.pulls.mu.Lock()
			f := r.pulls.m["id"]
			f.backOffAt = time.Now()
			r.pulls.m["id"] = f
			r.pulls.mu.Unlock()
		}
		_, res := r.image(ctx, inst, "id", c, 0)
		w := res.status.State.Waiting
		reasons = append(reasons, w.Reason)
		if !strings.Contains(w.Message, "UNAUTHORIZED") || strings.Contains(w.Message, pullPassword) {
			t.Errorf("waiting message %q: want the registry's refusal, no password", w.Message)
		}
	}
	if !slices.Equal(reasons, []string{"ErrImagePull", "ErrImagePull", "ImagePullBackOff"}) {
		t.Errorf("reasons %q, want ErrImagePull twice, then ImagePullBackOff", reasons)
	}
	asked := store.asked()
	if len(asked) != 1 || asked[0].Policy != image.Always || asked[0].Keyring.Len() != 1 {
		t.Fatalf("store asked with %v, want Always and regcred's credentials, once", asked)
	}

	got := warnings(t, api, inst)
	want := "Unable to retrieve some image pull secrets (absent); attempting to pull the image may not succeed."
	if msgs := got["FailedToRetrieveImagePullSecret"]; len(msgs) != 1 || msgs[0] != want {
		t.Errorf("FailedToRetrieveImagePullSecret Events %q, want one %q", msgs, want)
	}
	for reason, msgs := range got {
		for _, m := range msgs {
			if strings.Contains(m, pullPassword) {
				t.Errorf("%s Event %q shows the password", reason, m)
			}
		}
	}
}
