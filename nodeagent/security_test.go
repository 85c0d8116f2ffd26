package nodeagent

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/apiserver/apiservertest"
	"skiff.dev/skiff/nodeagent/bundle"
	"skiff.dev/skiff/nodeagent/image"
	cruntime "skiff.dev/skiff/nodeagent/runtime"
)

func TestEffectiveSecurityContext(t *testing.T) {
	inst := boundInstance("i", "n1")
	inst.Spec.SecurityContext = &skiffv1alpha1.InstanceSecurityContext{
		RunAsUser: ptr.To[int64](1000), RunAsGroup: ptr.To[int64](1000), RunAsNonRoot: ptr.To(true),
		SeccompProfile: &skiffv1alpha1.SeccompProfile{Type: skiffv1alpha1.SeccompProfileTypeUnconfined},
	}
	c := &inst.Spec.Containers[0]
	if sc := effectiveSecurityContext(inst, c); *sc.RunAsUser != 1000 || *sc.RunAsGroup != 1000 || !*sc.RunAsNonRoot || sc.SeccompProfile.Type != skiffv1alpha1.SeccompProfileTypeUnconfined {
		t.Errorf("without a container context: %+v, want the Instance's", sc)
	}
	c.SecurityContext = &skiffv1alpha1.SecurityContext{RunAsUser: ptr.To[int64](2000), RunAsNonRoot: ptr.To(false),
		SeccompProfile: &skiffv1alpha1.SeccompProfile{Type: skiffv1alpha1.SeccompProfileTypeRuntimeDefault}, ReadOnlyRootFilesystem: ptr.To(true)}
	sc := effectiveSecurityContext(inst, c)
	if *sc.RunAsUser != 2000 || *sc.RunAsGroup != 1000 || *sc.RunAsNonRoot || sc.SeccompProfile.Type != skiffv1alpha1.SeccompProfileTypeRuntimeDefault || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("got %+v: want the container's settings over the Instance's", sc)
	}
	if *inst.Spec.SecurityContext.RunAsUser != 1000 || *c.SecurityContext.RunAsUser != 2000 || c.SecurityContext.RunAsGroup != nil {
		t.Error("the spec was changed")
	}
}

func TestRunAs(t *testing.T) {
	id := ptr.To[int64]
	str := ptr.To[string]
	cases := []struct {
		user, group *int64
		image       *string
		want        string
	}{
		{nil, nil, str(""), ""},
		{nil, nil, str("app:staff"), "app:staff"},
		{id(1000), nil, str("app:staff"), "1000"},
		{id(1000), id(3000), str("app"), "1000:3000"},
		{nil, id(3000), str("app:staff"), "app:3000"},
		{nil, id(3000), str(""), "0:3000"},
		{id(0), nil, nil, "0"},
		{nil, nil, nil, ""},
	}
	for _, tc := range cases {
		if got := runAs(tc.user, tc.group, tc.image); got != tc.want {
			t.Errorf("runAs(%v, %v, %v) = %q, want %q", ptr.Deref(tc.user, -1), ptr.Deref(tc.group, -1), ptr.Deref(tc.image, "<nil>"), got, tc.want)
		}
	}
}

func TestSecurityPolicy(t *testing.T) {
	all := bundle.AllCapabilities()
	allowed := securityPolicy{allowPrivileged: true, capabilities: all}
	where := ` (instance: "default/i", container: main)`
	cases := []struct {
		name   string
		policy securityPolicy
		sc     skiffv1alpha1.SecurityContext
		image  *string
		want   containerSecurity
		err    string
	}{
		{name: "default", image: ptr.To(""), want: containerSecurity{}},
		{name: "image user", image: ptr.To("app"), want: containerSecurity{user: "app"}},
		{name: "runAsUser and runAsGroup", sc: skiffv1alpha1.SecurityContext{RunAsUser: ptr.To[int64](1000), RunAsGroup: ptr.To[int64](2000)}, image: ptr.To("app"),
			want: containerSecurity{user: "1000:2000"}},
		{name: "settings", policy: allowed, sc: skiffv1alpha1.SecurityContext{ReadOnlyRootFilesystem: ptr.To(true), AllowPrivilegeEscalation: ptr.To(true),
			SeccompProfile: &skiffv1alpha1.SeccompProfile{Type: skiffv1alpha1.SeccompProfileTypeUnconfined}},
			want: containerSecurity{readonlyRootfs: true, allowPrivilegeEscalation: true, unconfined: true}},
		{name: "allowPrivilegeEscalation false", sc: skiffv1alpha1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false),
			SeccompProfile: &skiffv1alpha1.SeccompProfile{Type: skiffv1alpha1.SeccompProfileTypeRuntimeDefault}}, want: containerSecurity{}},
		{name: "capabilities", policy: allowed, sc: skiffv1alpha1.SecurityContext{Capabilities: &skiffv1alpha1.Capabilities{Add: []skiffv1alpha1.Capability{"NET_ADMIN"}, Drop: []skiffv1alpha1.Capability{"CAP_NET_RAW"}}},
			want: containerSecurity{capabilities: []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
				"CAP_NET_BIND_SERVICE", "CAP_NET_ADMIN", "CAP_SYS_CHROOT", "CAP_MKNOD", "CAP_AUDIT_WRITE", "CAP_SETFCAP"}}},
		{name: "drop ALL", sc: skiffv1alpha1.SecurityContext{Capabilities: &skiffv1alpha1.Capabilities{Drop: []skiffv1alpha1.Capability{"ALL"}}},
			want: containerSecurity{capabilities: []string{}}},
		{name: "unknown capability", sc: skiffv1alpha1.SecurityContext{Capabilities: &skiffv1alpha1.Capabilities{Add: []skiffv1alpha1.Capability{"NET_ADMN"}}},
			err: "unknown capabilities: NET_ADMN"},
		{name: "unconfined refused", sc: skiffv1alpha1.SecurityContext{SeccompProfile: &skiffv1alpha1.SeccompProfile{Type: skiffv1alpha1.SeccompProfileTypeUnconfined}},
			err: "seccompProfile Unconfined is not allowed on this node (agent --allow-privileged)"},
		{name: "a capability beyond the defaults refused", sc: skiffv1alpha1.SecurityContext{Capabilities: &skiffv1alpha1.Capabilities{Add: []skiffv1alpha1.Capability{"NET_BIND_SERVICE", "sys_admin", "ALL"}}},
			err: "adding capabilities beyond the default set (sys_admin, ALL) is not allowed on this node (agent --allow-privileged)"},
		{name: "a default capability added back", sc: skiffv1alpha1.SecurityContext{Capabilities: &skiffv1alpha1.Capabilities{Drop: []skiffv1alpha1.Capability{"ALL"}, Add: []skiffv1alpha1.Capability{"CAP_KILL"}}},
			want: containerSecurity{capabilities: []string{"CAP_KILL"}}},
		{name: "runAsNonRoot, a signed image user", sc: skiffv1alpha1.SecurityContext{RunAsNonRoot: ptr.To(true)}, image: ptr.To("+1000"),
			err: "container has runAsNonRoot and image has non-numeric user (+1000), cannot verify user is non-root" + where},
		{name: "privileged refused", sc: skiffv1alpha1.SecurityContext{Privileged: ptr.To(true)},
			err: "privileged containers are not allowed on this node (agent --allow-privileged)"},
		{name: "privileged", policy: allowed, sc: skiffv1alpha1.SecurityContext{Privileged: ptr.To(true), Capabilities: &skiffv1alpha1.Capabilities{Drop: []skiffv1alpha1.Capability{"ALL"}}},
			want: containerSecurity{privileged: true, capabilities: all}},
		{name: "runAsNonRoot, root image", sc: skiffv1alpha1.SecurityContext{RunAsNonRoot: ptr.To(true)}, image: ptr.To(""),
			err: "container has runAsNonRoot and image will run as root" + where},
		{name: "runAsNonRoot, uid 0 image", sc: skiffv1alpha1.SecurityContext{RunAsNonRoot: ptr.To(true)}, image: ptr.To("0:1000"),
			err: "container has runAsNonRoot and image will run as root" + where},
		{name: "runAsNonRoot, named image user", sc: skiffv1alpha1.SecurityContext{RunAsNonRoot: ptr.To(true)}, image: ptr.To("app:app"),
			err: "container has runAsNonRoot and image has non-numeric user (app), cannot verify user is non-root" + where},
		{name: "runAsNonRoot, runAsUser 0", sc: skiffv1alpha1.SecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](0)}, image: ptr.To("1000"),
			err: "container's runAsUser breaks non-root policy" + where},
		{name: "runAsNonRoot, numeric image user", sc: skiffv1alpha1.SecurityContext{RunAsNonRoot: ptr.To(true)}, image: ptr.To("1000:1000"),
			want: containerSecurity{user: "1000:1000"}},
		{name: "runAsNonRoot, runAsUser over a root image", sc: skiffv1alpha1.SecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](1000)}, image: ptr.To(""),
			want: containerSecurity{user: "1000"}},
		{name: "runAsNonRoot without an image (sim)", sc: skiffv1alpha1.SecurityContext{RunAsNonRoot: ptr.To(true)}, want: containerSecurity{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.policy.security(tc.sc, tc.image, "default/i", "main")
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.user != tc.want.user || !slices.Equal(got.capabilities, tc.want.capabilities) || (got.capabilities == nil) != (tc.want.capabilities == nil) ||
				got.readonlyRootfs != tc.want.readonlyRootfs || got.allowPrivilegeEscalation != tc.want.allowPrivilegeEscalation ||
				got.privileged != tc.want.privileged || got.unconfined != tc.want.unconfined {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestSecure checks the user a security context resolves to in the
// image's /etc/passwd, and that a privileged container gets the node's
// devices.
func TestSecure(t *testing.T) {
	layer := t.TempDir()
	if err := os.MkdirAll(filepath.Join(layer, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(layer, "etc", "passwd"), []byte("root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	img := &image.Image{Config: v1.Config{User: "app"}, Layers: []string{layer}}
	null := specs.LinuxDevice{Path: "/dev/null", Type: "c", Major: 1, Minor: 3}
	r := &instanceReconciler{security: securityPolicy{allowPrivileged: true, capabilities: []string{"CAP_SYS_ADMIN"},
		hostDevices: func() ([]specs.LinuxDevice, error) { return []specs.LinuxDevice{null}, nil }}}
	cases := []struct {
		name     string
		sc       *skiffv1alpha1.SecurityContext
		uid, gid uint32
	}{
		{"image user", nil, 1000, 1001},
		{"runAsUser in passwd", &skiffv1alpha1.SecurityContext{RunAsUser: ptr.To[int64](1000)}, 1000, 1001},
		{"runAsUser not in passwd", &skiffv1alpha1.SecurityContext{RunAsUser: ptr.To[int64](4242)}, 4242, 0},
		{"runAsUser and runAsGroup", &skiffv1alpha1.SecurityContext{RunAsUser: ptr.To[int64](2000), RunAsGroup: ptr.To[int64](3000)}, 2000, 3000},
		{"runAsGroup only", &skiffv1alpha1.SecurityContext{RunAsGroup: ptr.To[int64](3000)}, 1000, 3000},
	}
	for _, tc := range cases {
		inst := boundInstance("i", "n1")
		inst.Spec.Containers[0].SecurityContext = tc.sc
		var in bundle.Input
		if err := r.secure(&in, inst, &inst.Spec.Containers[0], img); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if in.UID != tc.uid || in.GID != tc.gid || in.Devices != nil {
			t.Errorf("%s: %d:%d devices %v, want %d:%d and none", tc.name, in.UID, in.GID, in.Devices, tc.uid, tc.gid)
		}
	}
	inst := boundInstance("i", "n1")
	inst.Spec.Containers[0].SecurityContext = &skiffv1alpha1.SecurityContext{Privileged: ptr.To(true)}
	var in bundle.Input
	if err := r.secure(&in, inst, &inst.Spec.Containers[0], img); err != nil {
		t.Fatal(err)
	}
	if !in.Privileged || !slices.Equal(in.Devices, []specs.LinuxDevice{null}) || !slices.Equal(in.Capabilities, []string{"CAP_SYS_ADMIN"}) {
		t.Errorf("privileged: %+v, want the node's devices and the agent's capabilities", in)
	}
	img.Config.User = "nobody"
	if err := r.secure(&bundle.Input{}, boundInstance("i", "n1"), &inst.Spec.Containers[0], img); err == nil {
		t.Error("an image user missing from /etc/passwd resolved")
	}
}

// bundleRecorder is a runtime that remembers the bundle input each
// container was created with.
type bundleRecorder struct {
	cruntime.Runtime
	mu sync.Mutex
	in map[string]bundle.Input
}

func (b *bundleRecorder) Create(ctx context.Context, id string, spec cruntime.Spec) error {
	b.mu.Lock()
	b.in[id] = spec.Bundle
	b.mu.Unlock()
	return b.Runtime.Create(ctx, id, spec)
}

func (b *bundleRecorder) of(id string) (bundle.Input, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	in, ok := b.in[id]
	return in, ok
}

// TestSecurityContextOnSim runs an agent against a real API server: a
// container's security context reaches the bundle it is made with, and
// what the node refuses (a privileged container without
// --allow-privileged, an unknown capability, root under runAsNonRoot)
// waits in CreateContainerConfigError with a Failed Event, never made.
func TestSecurityContextOnSim(t *testing.T) {
	s := apiservertest.Start(t)
	a, err := New(testConfig(s, t.TempDir(), "n1"))
	if err != nil {
		t.Fatal(err)
	}
	rec := &bundleRecorder{Runtime: a.rt, in: map[string]bundle.Input{}}
	a.rt = rec
	apiservertest.Run(t, context.Background(), a.Run)
	admin := adminClient(t, s, a)
	ctx := context.Background()
	eventually(t, "node n1", func() bool { return admin.Get(ctx, client.ObjectKey{Name: "n1"}, &skiffv1alpha1.Node{}) == nil })

	ok := boundInstance("ok", "n1")
	ok.Spec.SecurityContext = &skiffv1alpha1.InstanceSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](1000),
		SeccompProfile: &skiffv1alpha1.SeccompProfile{Type: skiffv1alpha1.SeccompProfileTypeRuntimeDefault}}
	ok.Spec.Containers[0].SecurityContext = &skiffv1alpha1.SecurityContext{ReadOnlyRootFilesystem: ptr.To(true), AllowPrivilegeEscalation: ptr.To(true),
		Capabilities: &skiffv1alpha1.Capabilities{Drop: []skiffv1alpha1.Capability{"ALL"}, Add: []skiffv1alpha1.Capability{"NET_BIND_SERVICE"}}}
	createBound(t, admin, ok, "n1")
	got := waitContainer(t, admin, ok, "Running", func(cs skiffv1alpha1.ContainerStatus) bool { return cs.State.Running != nil })
	in, _ := rec.of(containerID(got, "main"))
	if !in.ReadonlyRootfs || !in.AllowPrivilegeEscalation || in.Unconfined || in.Privileged || !slices.Equal(in.Capabilities, []string{"CAP_NET_BIND_SERVICE"}) {
		t.Errorf("bundle input %+v: want a read-only root, no_new_privs off, the seccomp filter, CAP_NET_BIND_SERVICE only", in)
	}

	refused := []struct {
		name string
		sc   *skiffv1alpha1.SecurityContext
		msg  string
	}{
		{"privileged", &skiffv1alpha1.SecurityContext{Privileged: ptr.To(true)}, "privileged containers are not allowed on this node (agent --allow-privileged)"},
		{"unknown-cap", &skiffv1alpha1.SecurityContext{Capabilities: &skiffv1alpha1.Capabilities{Add: []skiffv1alpha1.Capability{"TIME_TRAVEL"}}}, "unknown capabilities: TIME_TRAVEL"},
		{"sys-admin", &skiffv1alpha1.SecurityContext{Capabilities: &skiffv1alpha1.Capabilities{Add: []skiffv1alpha1.Capability{"SYS_ADMIN"}}}, "adding capabilities beyond the default set (SYS_ADMIN) is not allowed on this node (agent --allow-privileged)"},
		{"unconfined", &skiffv1alpha1.SecurityContext{SeccompProfile: &skiffv1alpha1.SeccompProfile{Type: skiffv1alpha1.SeccompProfileTypeUnconfined}}, "seccompProfile Unconfined is not allowed on this node (agent --allow-privileged)"},
		{"root", &skiffv1alpha1.SecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](0)}, `container's runAsUser breaks non-root policy (instance: "default/root", container: main)`},
	}
	for _, r := range refused {
		inst := boundInstance(r.name, "n1")
		inst.Spec.Containers[0].SecurityContext = r.sc
		createBound(t, admin, inst, "n1")
		got := waitContainer(t, admin, inst, "CreateContainerConfigError: "+r.msg, func(cs skiffv1alpha1.ContainerStatus) bool {
			w := cs.State.Waiting
			return w != nil && w.Reason == "CreateContainerConfigError" && w.Message == r.msg
		})
		if got.Status.Phase != skiffv1alpha1.InstancePending {
			t.Errorf("%s: phase %s, want Pending", r.name, got.Status.Phase)
		}
		if _, made := rec.of(containerID(got, "main")); made {
			t.Errorf("%s: the container was made", r.name)
		}
		eventually(t, r.name+": Failed Event", func() bool { return slices.Contains(eventMessages(t, admin, "Failed"), "Error: "+r.msg) })
	}
}
