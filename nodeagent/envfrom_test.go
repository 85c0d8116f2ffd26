package nodeagent

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/apiserver/apiservertest"
	"skiff.dev/skiff/internal/syncbuf"
	cruntime "skiff.dev/skiff/nodeagent/runtime"
)

func secretRef(name, key string, optional bool) *skiffv1alpha1.EnvVarSource {
	return &skiffv1alpha1.EnvVarSource{SecretKeyRef: &skiffv1alpha1.SecretKeySelector{Name: name, Key: key, Optional: optionalPtr(optional)}}
}

func configMapRef(name, key string, optional bool) *skiffv1alpha1.EnvVarSource {
	return &skiffv1alpha1.EnvVarSource{ConfigMapKeyRef: &skiffv1alpha1.ConfigMapKeySelector{Name: name, Key: key, Optional: optionalPtr(optional)}}
}

func optionalPtr(optional bool) *bool {
	if !optional {
		return nil
	}
	return ptr.To(true)
}

// TestResolveEnv: the kubelet's order and precedence, optional and
// required sources and keys, names that are no variables, each source
// read once.
func TestResolveEnv(t *testing.T) {
	db := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "db"},
		Data: map[string][]byte{"password": []byte("pw-1"), "user": []byte("admin")}}
	app := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "app"},
		Data:       map[string]string{"mode": "fast", "LEVEL": "info", "1st": "x"},
		BinaryData: map[string][]byte{"blob": {0xff}}}
	fromSecret := func(name, prefix string, optional bool) skiffv1alpha1.EnvFromSource {
		return skiffv1alpha1.EnvFromSource{Prefix: prefix, SecretRef: &skiffv1alpha1.SecretEnvSource{Name: name, Optional: optionalPtr(optional)}}
	}
	fromConfigMap := func(name, prefix string, optional bool) skiffv1alpha1.EnvFromSource {
		return skiffv1alpha1.EnvFromSource{Prefix: prefix, ConfigMapRef: &skiffv1alpha1.ConfigMapEnvSource{Name: name, Optional: optionalPtr(optional)}}
	}
	for _, tc := range []struct {
		name    string
		c       skiffv1alpha1.Container
		vars    []string
		skipped []string
		wantErr string
	}{
		{name: "plain values, in order", c: skiffv1alpha1.Container{Env: []skiffv1alpha1.EnvVar{{Name: "B", Value: "2"}, {Name: "A", Value: "1"}, {Name: "EMPTY"}}},
			vars: []string{"B=2", "A=1", "EMPTY="}},
		{name: "a Secret's key", c: skiffv1alpha1.Container{Env: []skiffv1alpha1.EnvVar{{Name: "PASSWORD", ValueFrom: secretRef("db", "password", false)}}},
			vars: []string{"PASSWORD=pw-1"}},
		{name: "a ConfigMap's key", c: skiffv1alpha1.Container{Env: []skiffv1alpha1.EnvVar{{Name: "LOG", ValueFrom: configMapRef("app", "LEVEL", false)}}},
			vars: []string{"LOG=info"}},
		{name: "envFrom with a prefix", c: skiffv1alpha1.Container{EnvFrom: []skiffv1alpha1.EnvFromSource{fromSecret("db", "DB_", false)}},
			vars: []string{"DB_password=pw-1", "DB_user=admin"}},
		{name: "envFrom skips invalid names, and binaryData as the kubelet does", c: skiffv1alpha1.Container{EnvFrom: []skiffv1alpha1.EnvFromSource{fromConfigMap("app", "", false)}},
			vars: []string{"LEVEL=info", "mode=fast"}, skipped: []string{"ConfigMap app: 1st"}},
		{name: "a prefix makes a name valid", c: skiffv1alpha1.Container{EnvFrom: []skiffv1alpha1.EnvFromSource{fromConfigMap("app", "APP_", false)}},
			vars: []string{"APP_1st=x", "APP_LEVEL=info", "APP_mode=fast"}},
		{name: "env wins over envFrom, a later source over an earlier one", c: skiffv1alpha1.Container{
			EnvFrom: []skiffv1alpha1.EnvFromSource{fromConfigMap("app", "", false), fromSecret("db", "", false), fromSecret("db", "", false)},
			Env: []skiffv1alpha1.EnvVar{
				{Name: "mode", Value: "from-env"}, {Name: "user", ValueFrom: configMapRef("app", "LEVEL", false)}, {Name: "mode", Value: "last"},
			}},
			vars: []string{"LEVEL=info", "mode=last", "password=pw-1", "user=info"}, skipped: []string{"ConfigMap app: 1st"}},
		{name: "optional missing sources and keys are skipped", c: skiffv1alpha1.Container{
			EnvFrom: []skiffv1alpha1.EnvFromSource{fromSecret("absent", "", true), fromConfigMap("absent", "", true)},
			Env: []skiffv1alpha1.EnvVar{
				{Name: "A", ValueFrom: secretRef("absent", "k", true)}, {Name: "B", ValueFrom: secretRef("db", "absent", true)},
				{Name: "C", ValueFrom: configMapRef("absent", "k", true)}, {Name: "D", ValueFrom: configMapRef("app", "absent", true)},
				{Name: "E", Value: "e"},
			}},
			vars: []string{"E=e"}},
		{name: "required Secret missing", c: skiffv1alpha1.Container{Env: []skiffv1alpha1.EnvVar{{Name: "A", ValueFrom: secretRef("absent", "k", false)}}},
			wantErr: `secret "absent" not found`},
		{name: "required Secret key missing", c: skiffv1alpha1.Container{Env: []skiffv1alpha1.EnvVar{{Name: "A", ValueFrom: secretRef("db", "token", false)}}},
			wantErr: `couldn't find key token in Secret default/db`},
		{name: "required ConfigMap missing", c: skiffv1alpha1.Container{Env: []skiffv1alpha1.EnvVar{{Name: "A", ValueFrom: configMapRef("absent", "k", false)}}},
			wantErr: `configmap "absent" not found`},
		{name: "required ConfigMap key missing", c: skiffv1alpha1.Container{Env: []skiffv1alpha1.EnvVar{{Name: "A", ValueFrom: configMapRef("app", "blob", false)}}},
			wantErr: `couldn't find key blob in ConfigMap default/app`},
		{name: "required envFrom Secret missing", c: skiffv1alpha1.Container{EnvFrom: []skiffv1alpha1.EnvFromSource{fromSecret("absent", "", false)}},
			wantErr: `secret "absent" not found`},
		{name: "required envFrom ConfigMap missing", c: skiffv1alpha1.Container{EnvFrom: []skiffv1alpha1.EnvFromSource{fromConfigMap("absent", "", false)}},
			wantErr: `configmap "absent" not found`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gets := map[string]int{}
			reader := interceptor.NewClient(fakeSources(t, db, app), interceptor.Funcs{
				Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
					gets[key.Name]++
					return c.Get(ctx, key, obj, opts...)
				},
			})
			env, err := resolveEnv(context.Background(), reader, "default", &tc.c)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(env.vars, tc.vars) {
				t.Errorf("env %q, want %q", env.vars, tc.vars)
			}
			var skipped []string
			for _, s := range env.skipped {
				skipped = append(skipped, s.src.kind+" "+s.src.name+": "+strings.Join(s.keys, ","))
			}
			if !slices.Equal(skipped, tc.skipped) {
				t.Errorf("skipped %q, want %q", skipped, tc.skipped)
			}
			for name, n := range gets {
				if n > 1 && name != "absent" { // a Secret and a ConfigMap may share a name
					t.Errorf("%s read %d times, want once", name, n)
				}
			}
		})
	}
}

func fakeSources(t *testing.T, objs ...client.Object) client.WithWatch {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	return fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build()
}

// envRecorder is a runtime that remembers the environment each container
// was created with.
type envRecorder struct {
	cruntime.Runtime
	mu  sync.Mutex
	env map[string][]string
}

func (e *envRecorder) Create(ctx context.Context, id string, spec cruntime.Spec) error {
	e.mu.Lock()
	e.env[id] = slices.Clone(spec.Bundle.Env)
	e.mu.Unlock()
	return e.Runtime.Create(ctx, id, spec)
}

func (e *envRecorder) of(id string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.env[id]
}

// captureLogs sends klog (and controller-runtime's log through it) to a
// buffer at -v=5 for the rest of the test. Above that client-go prints
// response bodies, Secrets among them, as its debugging levels do
// everywhere.
func captureLogs(t *testing.T) *syncbuf.Buffer {
	t.Helper()
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	buf := &syncbuf.Buffer{}
	for k, v := range map[string]string{"v": "5", "logtostderr": "false", "alsologtostderr": "false", "stderrthreshold": "FATAL"} {
		if err := fs.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	klog.SetOutput(buf)
	ctrllog.SetLogger(klog.NewKlogr())
	t.Cleanup(func() {
		klog.Flush()
		for k, v := range map[string]string{"v": "0", "logtostderr": "true", "stderrthreshold": "ERROR"} {
			_ = fs.Set(k, v)
		}
		klog.SetOutput(os.Stderr)
	})
	return buf
}

// TestEnvFromSecretsAndConfigMaps runs an agent against a real API
// server: variables come from a Secret and a ConfigMap the node may get
// by name; a container whose required Secret is missing waits in
// CreateContainerConfigError and starts once the Secret exists, with
// nobody touching its Instance; no value reaches a log, an Event or a
// status.
func TestEnvFromSecretsAndConfigMaps(t *testing.T) {
	logs := captureLogs(t)
	s := apiservertest.Start(t)
	cfg := testConfig(s, t.TempDir(), "n1")
	cfg.Backoff = Backoff{Base: 200 * time.Millisecond, Max: time.Second}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rec := &envRecorder{Runtime: a.rt, env: map[string][]string{}}
	a.rt = rec
	apiservertest.Run(t, context.Background(), a.Run)
	admin := adminClient(t, s, a)
	ctx := context.Background()
	eventually(t, "node n1", func() bool { return admin.Get(ctx, client.ObjectKey{Name: "n1"}, &skiffv1alpha1.Node{}) == nil })

	const password, token = "hunter2-pw-value", "late-token-value"
	mustCreate := func(obj client.Object) {
		t.Helper()
		if err := admin.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	mustCreate(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "db"},
		Data: map[string][]byte{"password": []byte(password), "user": []byte("admin")}})
	mustCreate(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "app"},
		Data: map[string]string{"mode": "fast", "LEVEL": "info", "1st": "skipped"}})

	inst := boundInstance("env", "n1")
	inst.Spec.Containers[0].EnvFrom = []skiffv1alpha1.EnvFromSource{
		{ConfigMapRef: &skiffv1alpha1.ConfigMapEnvSource{Name: "app"}},
		{Prefix: "DB_", SecretRef: &skiffv1alpha1.SecretEnvSource{Name: "db"}},
		{SecretRef: &skiffv1alpha1.SecretEnvSource{Name: "absent", Optional: ptr.To(true)}},
	}
	inst.Spec.Containers[0].Env = []skiffv1alpha1.EnvVar{
		{Name: "mode", Value: "from-env"},
		{Name: "PASSWORD", ValueFrom: secretRef("db", "password", false)},
		{Name: "LOG", ValueFrom: configMapRef("app", "LEVEL", false)},
		{Name: "OPTIONAL", ValueFrom: secretRef("db", "absent", true)},
	}
	createBound(t, admin, inst, "n1")
	got := waitContainer(t, admin, inst, "Running", func(cs skiffv1alpha1.ContainerStatus) bool { return cs.State.Running != nil })
	want := []string{"LEVEL=info", "mode=from-env", "DB_password=" + password, "DB_user=admin", "PASSWORD=" + password, "LOG=info"}
	if env := rec.of(containerID(got, "main")); !slices.Equal(env, want) {
		t.Errorf("container env %q, want %q", env, want)
	}
	eventually(t, "InvalidEnvironmentVariableNames Event", func() bool {
		return slices.Contains(eventMessages(t, admin, "InvalidEnvironmentVariableNames"),
			"Keys [1st] from the EnvFrom configMap default/app were skipped since they are considered invalid environment variable names.")
	})

	// A required Secret that does not exist yet.
	late := boundInstance("late", "n1")
	late.Spec.Containers[0].Env = []skiffv1alpha1.EnvVar{{Name: "TOKEN", ValueFrom: secretRef("late", "token", false)}}
	createBound(t, admin, late, "n1")
	waiting := func(msg string) func(skiffv1alpha1.ContainerStatus) bool {
		return func(cs skiffv1alpha1.ContainerStatus) bool {
			w := cs.State.Waiting
			return w != nil && w.Reason == "CreateContainerConfigError" && w.Message == msg
		}
	}
	got = waitContainer(t, admin, late, `CreateContainerConfigError: secret "late" not found`, waiting(`secret "late" not found`))
	if got.Status.Phase != skiffv1alpha1.InstancePending {
		t.Errorf("phase %s while the Secret is missing, want Pending", got.Status.Phase)
	}
	eventually(t, "Failed Event naming the Secret", func() bool {
		return slices.Contains(eventMessages(t, admin, "Failed"), `Error: secret "late" not found`)
	})
	// Then without the key, then with it: it starts by itself.
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "late"}, Data: map[string][]byte{"other": []byte(token)}}
	mustCreate(secret)
	waitContainer(t, admin, late, "CreateContainerConfigError naming the key", waiting("couldn't find key token in Secret default/late"))
	secret.Data = map[string][]byte{"token": []byte(token)}
	if err := admin.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	got = waitContainer(t, admin, late, "Running once the key exists", func(cs skiffv1alpha1.ContainerStatus) bool { return cs.State.Running != nil })
	if env := rec.of(containerID(got, "main")); !slices.Equal(env, []string{"TOKEN=" + token}) {
		t.Errorf("container env %q, want TOKEN from the Secret", env)
	}

	klog.Flush()
	var events corev1.EventList
	if err := admin.List(ctx, &events, client.InNamespace("default")); err != nil {
		t.Fatal(err)
	}
	var statuses []skiffv1alpha1.InstanceStatus
	for _, i := range []*skiffv1alpha1.Instance{inst, late} {
		var cur skiffv1alpha1.Instance
		if err := admin.Get(ctx, client.ObjectKeyFromObject(i), &cur); err != nil {
			t.Fatal(err)
		}
		statuses = append(statuses, cur.Status)
	}
	for what, text := range map[string]string{"the logs": logs.String(), "the Events": asJSON(t, events), "the statuses": asJSON(t, statuses)} {
		for _, v := range []string{password, token} {
			if strings.Contains(text, v) || strings.Contains(text, base64.StdEncoding.EncodeToString([]byte(v))) {
				t.Errorf("a Secret's value %q is in %s", v, what)
			}
		}
	}
	if !strings.Contains(logs.String(), "n1") {
		t.Errorf("captured no log of the agent: the check above proves nothing")
	}
}

// waitContainer waits until inst's first container status satisfies cond
// and returns the Instance.
func waitContainer(t *testing.T, c client.Client, inst *skiffv1alpha1.Instance, what string, cond func(skiffv1alpha1.ContainerStatus) bool) *skiffv1alpha1.Instance {
	t.Helper()
	var got skiffv1alpha1.Instance
	var last skiffv1alpha1.ContainerStatus
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := c.Get(context.Background(), client.ObjectKeyFromObject(inst), &got)
		if err == nil && len(got.Status.ContainerStatuses) > 0 {
			if last = got.Status.ContainerStatuses[0]; cond(last) {
				return &got
			}
		}
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance %s: timed out waiting for %s; last container state %s", inst.Name, what, asJSON(t, last.State))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// eventMessages are the messages of the Events with reason in default.
func eventMessages(t *testing.T, c client.Client, reason string) []string {
	t.Helper()
	var list corev1.EventList
	if err := c.List(context.Background(), &list, client.InNamespace("default")); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		if e.Reason == reason {
			out = append(out, e.Message)
		}
	}
	return out
}
