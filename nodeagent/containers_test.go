package nodeagent

import (
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/nodeagent/bundle"
)

func TestMergeProcess(t *testing.T) {
	img := v1.Config{
		Entrypoint: []string{"/entry"}, Cmd: []string{"--default"},
		Env: []string{"PATH=/usr/bin", "A=image", "B=image"}, WorkingDir: "/srv", User: "app",
	}
	for _, tc := range []struct {
		name    string
		img     v1.Config
		c       skiffv1alpha1.Container
		vars    []string // the container's resolved env
		args    []string
		env     []string
		cwd     string
		wantErr string
	}{
		{name: "image only", img: img, args: []string{"/entry", "--default"}, env: img.Env, cwd: "/srv"},
		{name: "command replaces entrypoint and cmd", img: img, c: skiffv1alpha1.Container{Command: []string{"/bin/sh"}},
			args: []string{"/bin/sh"}, env: img.Env, cwd: "/srv"},
		{name: "args replace cmd only", img: img, c: skiffv1alpha1.Container{Args: []string{"-x"}},
			args: []string{"/entry", "-x"}, env: img.Env, cwd: "/srv"},
		{name: "command and args", img: img, c: skiffv1alpha1.Container{Command: []string{"/bin/sh"}, Args: []string{"-c", "true"}},
			args: []string{"/bin/sh", "-c", "true"}, env: img.Env, cwd: "/srv"},
		{name: "env overrides by name and adds in order", img: img,
			vars: []string{"B=mine", "C=new"},
			args: []string{"/entry", "--default"}, env: []string{"PATH=/usr/bin", "A=image", "B=mine", "C=new"}, cwd: "/srv"},
		{name: "working dir from the container", img: img, c: skiffv1alpha1.Container{WorkingDir: "/work"},
			args: []string{"/entry", "--default"}, env: img.Env, cwd: "/work"},
		{name: "a default PATH when the image has none", img: v1.Config{Cmd: []string{"run"}},
			args: []string{"run"}, env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}},
		{name: "nothing to run", img: v1.Config{}, wantErr: "neither the container nor image"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c
			c.Name, c.Image = "main", "example/app:1"
			got, err := mergeProcess(tc.img, &c, tc.vars)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Args, tc.args) || !slices.Equal(got.Env, tc.env) || got.Cwd != tc.cwd {
				t.Errorf("got args %q env %q cwd %q\nwant args %q env %q cwd %q", got.Args, got.Env, got.Cwd, tc.args, tc.env, tc.cwd)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	q := resource.MustParse
	for _, tc := range []struct {
		name   string
		r      skiffv1alpha1.ResourceRequirements
		shares uint64
		quota  int64
		memory int64
	}{
		{name: "none"},
		{name: "requests give shares", r: skiffv1alpha1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: q("500m")}}, shares: 512},
		{name: "tiny request has the minimum shares", r: skiffv1alpha1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: q("1m")}}, shares: 2},
		{name: "limits give quota and memory; shares from the limit without a request",
			r:      skiffv1alpha1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: q("2"), corev1.ResourceMemory: q("64Mi")}},
			shares: 2048, quota: 200000, memory: 64 << 20},
		{name: "request and limit",
			r: skiffv1alpha1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: q("250m")},
				Limits:   corev1.ResourceList{corev1.ResourceCPU: q("1500m")},
			}, shares: 256, quota: 150000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var in bundle.Input
			limits(&in, tc.r)
			if in.CPUShares != tc.shares || in.CPUQuota != tc.quota || in.MemoryLimit != tc.memory {
				t.Errorf("shares %d quota %d memory %d, want %d %d %d", in.CPUShares, in.CPUQuota, in.MemoryLimit, tc.shares, tc.quota, tc.memory)
			}
			spec := bundle.Spec(in)
			if tc.quota > 0 && (spec.Linux.Resources.CPU == nil || *spec.Linux.Resources.CPU.Period != bundle.CPUPeriod) {
				t.Errorf("quota without the %d period in the spec", bundle.CPUPeriod)
			}
		})
	}
}

func TestOOMScoreAdj(t *testing.T) {
	inst := func(qos skiffv1alpha1.QOSClass, memory string) *skiffv1alpha1.Instance {
		i := &skiffv1alpha1.Instance{}
		i.Status.QOSClass = qos
		c := skiffv1alpha1.Container{Name: "main"}
		if memory != "" {
			c.Resources.Requests = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(memory)}
		}
		i.Spec.Containers = []skiffv1alpha1.Container{c}
		return i
	}
	const node = 8 << 30
	for _, tc := range []struct {
		name string
		inst *skiffv1alpha1.Instance
		want int
	}{
		{"guaranteed", inst(skiffv1alpha1.QOSGuaranteed, "1Gi"), -997},
		{"best effort", inst(skiffv1alpha1.QOSBestEffort, ""), 1000},
		{"burstable with a quarter of the node", inst(skiffv1alpha1.QOSBurstable, "2Gi"), 750},
		{"burstable asking for all of it", inst(skiffv1alpha1.QOSBurstable, "16Gi"), 2},
		{"burstable asking for nothing", inst(skiffv1alpha1.QOSBurstable, ""), 999},
	} {
		if got := oomScoreAdj(tc.inst, node); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

// TestOOMPolicyFloor: without CAP_SYS_RESOURCE (as in many containers
// and sandboxes) a Guaranteed Instance gets the agent's own score, which
// runc can set, instead of -997, which it cannot.
func TestOOMPolicyFloor(t *testing.T) {
	guaranteed := &skiffv1alpha1.Instance{Status: skiffv1alpha1.InstanceStatus{QOSClass: skiffv1alpha1.QOSGuaranteed}}
	if got := (oomPolicy{nodeMemory: 1 << 30, floor: 0}).score(guaranteed); got != 0 {
		t.Errorf("floor 0: %d, want 0", got)
	}
	if got := (oomPolicy{nodeMemory: 1 << 30, floor: -1000}).score(guaranteed); got != -997 {
		t.Errorf("floor -1000: %d, want -997", got)
	}
	if floor := ownOOMFloor(); floor < -1000 || floor > 1000 {
		t.Errorf("own floor %d out of range", floor)
	}
	// The Node says so where the floor keeps Guaranteed from -997.
	if c := oomCondition(-1000); c != nil {
		t.Errorf("floor -1000: condition %+v, want none", c)
	}
	if c := oomCondition(0); c == nil || c.Type != skiffv1alpha1.NodeConditionOOMScoreLimited || c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, "below 0") {
		t.Errorf("floor 0: condition %+v, want OOMScoreLimited naming the floor", c)
	}
}

func TestHostname(t *testing.T) {
	long := strings.Repeat("a", 62) + "-b"
	inst := &skiffv1alpha1.Instance{}
	inst.Name = long
	if h := hostname(inst); len(h) > 63 || strings.HasSuffix(h, "-") {
		t.Errorf("hostname %q: want at most 63 characters, no trailing dash", h)
	}
}
