package nodeagent

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/nodeagent/bundle"
)

// processSpec is what the image and the Instance say together about one
// container's process; its user is the security context's (secure).
type processSpec struct {
	Args []string
	Env  []string
	Cwd  string
}

// mergeProcess applies Kubernetes' rules for an image's config and a
// container's command and args:
//
//	command  args   runs
//	-        -      image entrypoint + image cmd
//	set      -      command
//	-        set    image entrypoint + args
//	set      set    command + args
//
// Env is the image's with the container's resolved env (NAME=value) added
// or overriding by name; the working directory is the container's, else
// the image's.
func mergeProcess(img v1.Config, c *skiffv1alpha1.Container, containerEnv []string) (processSpec, error) {
	var args []string
	switch {
	case len(c.Command) > 0:
		args = append(slices.Clone(c.Command), c.Args...)
	case len(c.Args) > 0:
		args = append(slices.Clone(img.Entrypoint), c.Args...)
	default:
		args = append(slices.Clone(img.Entrypoint), img.Cmd...)
	}
	if len(args) == 0 {
		return processSpec{}, fmt.Errorf("container %q: neither the container nor image %q says what to run (no command, args, entrypoint or cmd)", c.Name, c.Image)
	}
	env := slices.Clone(img.Env)
	index := map[string]int{}
	for i, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		index[k] = i
	}
	for _, kv := range containerEnv {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := index[k]; ok {
			env[i] = kv
			continue
		}
		index[k] = len(env)
		env = append(env, kv)
	}
	if _, ok := index["PATH"]; !ok {
		env = append(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	cwd := c.WorkingDir
	if cwd == "" {
		cwd = img.WorkingDir
	}
	return processSpec{Args: args, Env: env, Cwd: cwd}, nil
}

// limits turns a container's resources into cgroup limits: cpu shares from
// the request, cpu quota and memory from the limits, as the kubelet does.
func limits(in *bundle.Input, r skiffv1alpha1.ResourceRequirements) {
	if q, ok := r.Requests[corev1.ResourceCPU]; ok {
		in.CPUShares = bundle.CPUShares(q.MilliValue())
	} else if q, ok := r.Limits[corev1.ResourceCPU]; ok {
		in.CPUShares = bundle.CPUShares(q.MilliValue())
	}
	if q, ok := r.Limits[corev1.ResourceCPU]; ok {
		in.CPUQuota = bundle.CPUQuota(q.MilliValue())
	}
	if q, ok := r.Limits[corev1.ResourceMemory]; ok {
		in.MemoryLimit = q.Value()
	}
}

// oomPolicy ranks Instances for the kernel's OOM killer.
type oomPolicy struct {
	// nodeMemory is the node's memory capacity in bytes.
	nodeMemory int64
	// floor is the lowest oom_score_adj the agent may give: a process
	// without CAP_SYS_RESOURCE cannot go below its own (runc's create then
	// fails, and a Guaranteed Instance would never start).
	floor int
}

// newOOMPolicy ranks by the node's memory, never below floor
// (ownOOMFloor).
func newOOMPolicy(nodeMemory int64, floor int) oomPolicy {
	return oomPolicy{nodeMemory: nodeMemory, floor: floor}
}

// guaranteedOOMScore is what the kubelet gives Guaranteed Pods.
const guaranteedOOMScore = -997

// oomCondition is the Node condition OOMScoreLimited: True, with the
// floor, on a host that does not let the agent rank Guaranteed and
// Burstable Instances as the kubelet would (no CAP_SYS_RESOURCE, as in
// many containers and sandboxes); nil where it can.
func oomCondition(floor int) *metav1.Condition {
	if floor <= guaranteedOOMScore {
		return nil
	}
	return &metav1.Condition{
		Type: skiffv1alpha1.NodeConditionOOMScoreLimited, Status: metav1.ConditionTrue, Reason: "NoCapSysResource",
		Message: fmt.Sprintf("the agent may not set oom_score_adj below %d here (no CAP_SYS_RESOURCE): Instances run with at least %d, so the kernel's OOM killer does not spare Guaranteed ones first", floor, floor),
	}
}

// capSysResource is CAP_SYS_RESOURCE's bit in /proc/self/status CapEff.
const capSysResource = 24

// ownOOMFloor is -1000 with CAP_SYS_RESOURCE, else this process's own
// oom_score_adj (what a child may not go below).
func ownOOMFloor() int {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1000
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err == nil && caps&(1<<capSysResource) != 0 {
				return -1000
			}
		}
	}
	own, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(own)))
	if err != nil {
		return 0
	}
	return n
}

// score is oomScoreAdj, never below the floor.
func (p oomPolicy) score(inst *skiffv1alpha1.Instance) int {
	return max(oomScoreAdj(inst, p.nodeMemory), p.floor)
}

// oomScoreAdj ranks an Instance for the kernel's OOM killer by QoS class,
// as the kubelet does: Guaranteed last (-997), BestEffort first (1000),
// Burstable in between, the more memory it requests of the node's the later.
func oomScoreAdj(inst *skiffv1alpha1.Instance, nodeMemory int64) int {
	switch inst.Status.QOSClass {
	case skiffv1alpha1.QOSGuaranteed:
		return guaranteedOOMScore
	case skiffv1alpha1.QOSBestEffort:
		return 1000
	}
	var request int64
	for _, c := range inst.Spec.Containers {
		if q, ok := c.Resources.Requests[corev1.ResourceMemory]; ok {
			request += q.Value()
		}
	}
	if nodeMemory <= 0 {
		return 999
	}
	return int(min(max(1000-1000*request/nodeMemory, 2), 999))
}

// hostname is the Instance's name as a host name (at most 63 characters).
func hostname(inst *skiffv1alpha1.Instance) string {
	h := inst.Name
	if len(h) > 63 {
		h = strings.TrimRight(h[:63], "-.")
	}
	return h
}
