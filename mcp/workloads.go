package mcp

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// WorkloadArgs describe a Workload in the seed's terms: one container.
type WorkloadArgs struct {
	Name      string `json:"name" jsonschema:"the Workload's name: a DNS label such as web"`
	Namespace string `json:"namespace,omitempty" jsonschema:"namespace; default: the bridge's (default)"`
	Image     string `json:"image" jsonschema:"the container image, e.g. docker.io/library/nginx:1.27"`
	Replicas  *int32 `json:"replicas,omitempty" jsonschema:"how many Instances to run; default 1"`
	// CPUCores and MemoryMB are requests and limits alike (Guaranteed QoS).
	CPUCores float64           `json:"cpu_cores,omitempty" jsonschema:"CPU per Instance in cores (0.5 is half a core), reserved and the limit; default none"`
	MemoryMB int64             `json:"memory_mb,omitempty" jsonschema:"memory per Instance in MiB, reserved and the limit; default none"`
	Ports    []PortArg         `json:"ports,omitempty" jsonschema:"ports the container listens on"`
	Env      map[string]string `json:"env,omitempty" jsonschema:"environment variables of the container"`
	Labels   map[string]string `json:"labels,omitempty" jsonschema:"labels of the Instances (and the Workload's selector); default app=<name>"`
	Command  []string          `json:"command,omitempty" jsonschema:"replaces the image's entrypoint"`
	Args     []string          `json:"args,omitempty" jsonschema:"replaces the image's arguments"`
}

// PortArg is one container port.
type PortArg struct {
	ContainerPort int32  `json:"container_port" jsonschema:"the port the container listens on"`
	HostPort      int32  `json:"host_port,omitempty" jsonschema:"publish it on this port of the node"`
	Protocol      string `json:"protocol,omitempty" jsonschema:"TCP (default), UDP or SCTP"`
	Name          string `json:"name,omitempty" jsonschema:"a name for the port"`
}

// mainContainer is the container name of Workloads made from WorkloadArgs.
const mainContainer = "main"

// applyObject is the Workload the arguments describe, holding only the
// fields they set, for server-side apply.
func (a WorkloadArgs) applyObject(namespace string) (*unstructured.Unstructured, error) {
	if a.Name == "" {
		return nil, fmt.Errorf("argument name: required")
	}
	if a.Image == "" {
		return nil, fmt.Errorf("argument image: required")
	}
	if a.CPUCores < 0 {
		return nil, fmt.Errorf("argument cpu_cores: must not be negative (got %v)", a.CPUCores)
	}
	if a.MemoryMB < 0 {
		return nil, fmt.Errorf("argument memory_mb: must not be negative (got %d)", a.MemoryMB)
	}
	labels := a.Labels
	if len(labels) == 0 {
		labels = map[string]string{"app": a.Name}
	}
	container := map[string]any{"name": mainContainer, "image": a.Image}
	if len(a.Command) > 0 {
		container["command"] = anySlice(a.Command)
	}
	if len(a.Args) > 0 {
		container["args"] = anySlice(a.Args)
	}
	if env := envList(a.Env); len(env) > 0 {
		container["env"] = env
	}
	if res := resourceLimits(a.CPUCores, a.MemoryMB); res != nil {
		container["resources"] = map[string]any{"requests": res, "limits": res}
	}
	if len(a.Ports) > 0 {
		var ports []any
		for _, p := range a.Ports {
			port := map[string]any{"containerPort": int64(p.ContainerPort), "protocol": orDefault(p.Protocol, "TCP")}
			if p.HostPort != 0 {
				port["hostPort"] = int64(p.HostPort)
			}
			if p.Name != "" {
				port["name"] = p.Name
			}
			ports = append(ports, port)
		}
		container["ports"] = ports
	}
	spec := map[string]any{
		"template": map[string]any{
			"metadata": map[string]any{"labels": stringMap(labels)},
			"spec":     map[string]any{"containers": []any{container}},
		},
	}
	if a.Replicas != nil {
		spec["replicas"] = int64(*a.Replicas)
	}
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetGroupVersionKind(skiffv1alpha1.SchemeGroupVersion.WithKind("Workload"))
	u.SetName(a.Name)
	u.SetNamespace(namespace)
	return u, nil
}

func resourceLimits(cpu float64, memMB int64) map[string]any {
	res := map[string]any{}
	if cpu > 0 {
		res["cpu"] = strconv.FormatInt(int64(cpu*1000+0.5), 10) + "m"
	}
	if memMB > 0 {
		res["memory"] = strconv.FormatInt(memMB, 10) + "Mi"
	}
	if len(res) == 0 {
		return nil
	}
	return res
}

// envList is env as the API's list, sorted by name so that applies are stable.
func envList(env map[string]string) []any {
	names := make([]string, 0, len(env))
	for k := range env {
		names = append(names, k)
	}
	sort.Strings(names)
	var out []any
	for _, k := range names {
		out = append(out, map[string]any{"name": k, "value": env[k]})
	}
	return out
}

func anySlice(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func stringMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// updatePatch is a strategic merge patch of the fields in names: the
// container's image, env (merged by name) and resources, the labels.
func updatePatch(w *skiffv1alpha1.Workload, in UpdateWorkloadIn) ([]byte, error) {
	if in.CPUCores < 0 || in.MemoryMB < 0 {
		return nil, fmt.Errorf("argument cpu_cores or memory_mb: must not be negative")
	}
	patch := map[string]any{}
	if len(in.Labels) > 0 {
		patch["metadata"] = map[string]any{"labels": stringMap(in.Labels)}
	}
	container := map[string]any{}
	if in.Image != "" {
		container["image"] = in.Image
	}
	if env := envList(in.Env); len(env) > 0 {
		container["env"] = env
	}
	if res := resourceLimits(in.CPUCores, in.MemoryMB); res != nil {
		container["resources"] = map[string]any{"requests": res, "limits": res}
	}
	if len(container) > 0 {
		name, err := pickContainer(w, in.Container)
		if err != nil {
			return nil, err
		}
		container["name"] = name
		patch["spec"] = map[string]any{"template": map[string]any{"spec": map[string]any{"containers": []any{container}}}}
	}
	if len(patch) == 0 {
		return nil, fmt.Errorf("nothing to change: give image, env, cpu_cores, memory_mb or labels")
	}
	return json.Marshal(patch)
}

func pickContainer(w *skiffv1alpha1.Workload, name string) (string, error) {
	var names []string
	for _, c := range w.Spec.Template.Spec.Containers {
		if c.Name == name {
			return name, nil
		}
		names = append(names, c.Name)
	}
	switch {
	case name != "":
		return "", fmt.Errorf("argument container: workload %s has no container %q (it has %s)", w.Name, name, strings.Join(names, ", "))
	case len(names) == 1:
		return names[0], nil
	}
	return "", fmt.Errorf("argument container: workload %s has containers %s: name one", w.Name, strings.Join(names, ", "))
}
