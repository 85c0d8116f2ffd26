package nodeagent

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// A container's environment is resolved as the kubelet resolves it: the
// keys of each envFrom source in order, then env in order, a later
// variable replacing an earlier one of the same name. Secrets and
// ConfigMaps are read by name at every start with the node's direct
// client: the node authorizer lets a node get only the ones its Instances
// reference, and never list or watch them, so no cache could hold them.
//
// Values go nowhere but into the environment handed to the runtime:
// errors and Events name sources and keys, never what they hold.

// envSource is a Secret or ConfigMap, in the Instance's namespace, that
// variables come from.
type envSource struct {
	kind string // "Secret" or "ConfigMap"
	name string
}

// resource is the kind as the kubelet names it in errors ("secret").
func (s envSource) resource() string { return strings.ToLower(s.kind) }

// environment is a container's resolved variables, NAME=value in order,
// and the envFrom keys left out as invalid variable names.
type environment struct {
	vars    []string
	skipped []skippedKeys
}

// skippedKeys are one envFrom source's keys (with the prefix) that are no
// valid variable names.
type skippedKeys struct {
	src  envSource
	keys []string
}

// resolveEnv resolves c's variables from reader's Secrets and ConfigMaps
// in namespace. A missing source or key that is not optional is an error
// saying which, as the kubelet words it; an optional one adds nothing.
func resolveEnv(ctx context.Context, reader client.Reader, namespace string, c *skiffv1alpha1.Container) (environment, error) {
	sources := &sourceReads{reader: reader, namespace: namespace}
	var vars orderedEnv
	var skipped []skippedKeys
	for _, from := range c.EnvFrom {
		src, optional := fromSource(from)
		data, err := sources.get(ctx, src)
		if err != nil {
			if apierrors.IsNotFound(err) && optional {
				continue
			}
			return environment{}, err
		}
		var invalid []string
		for _, k := range slices.Sorted(maps.Keys(data)) {
			name := from.Prefix + k
			if len(validation.IsEnvVarName(name)) > 0 {
				invalid = append(invalid, name)
				continue
			}
			vars.set(name, data[k])
		}
		if len(invalid) > 0 {
			skipped = append(skipped, skippedKeys{src: src, keys: invalid})
		}
	}
	for _, e := range c.Env {
		v, ok, err := sources.value(ctx, e)
		if err != nil {
			return environment{}, err
		}
		if ok {
			vars.set(e.Name, v)
		}
	}
	return environment{vars: vars.list, skipped: skipped}, nil
}

// fromSource is the source an envFrom entry names, and whether it may be
// missing.
func fromSource(from skiffv1alpha1.EnvFromSource) (envSource, bool) {
	if from.SecretRef != nil {
		return envSource{kind: "Secret", name: from.SecretRef.Name}, isTrue(from.SecretRef.Optional)
	}
	return envSource{kind: "ConfigMap", name: from.ConfigMapRef.Name}, isTrue(from.ConfigMapRef.Optional)
}

func isTrue(b *bool) bool { return b != nil && *b }

// orderedEnv keeps variables in the order first set, a later value
// replacing an earlier one in place.
type orderedEnv struct {
	list  []string
	index map[string]int
}

func (o *orderedEnv) set(name, value string) {
	if o.index == nil {
		o.index = map[string]int{}
	}
	kv := name + "=" + value
	if i, ok := o.index[name]; ok {
		o.list[i] = kv
		return
	}
	o.index[name] = len(o.list)
	o.list = append(o.list, kv)
}

// sourceReads reads each source of one resolution once.
type sourceReads struct {
	reader    client.Reader
	namespace string
	done      map[envSource]sourceRead
}

type sourceRead struct {
	data map[string]string
	err  error
}

// value is e's value, and false when an optional source or key is missing.
func (s *sourceReads) value(ctx context.Context, e skiffv1alpha1.EnvVar) (string, bool, error) {
	if e.ValueFrom == nil {
		return e.Value, true, nil
	}
	src, key, optional := keySource(e.ValueFrom)
	data, err := s.get(ctx, src)
	if err != nil {
		if apierrors.IsNotFound(err) && optional {
			return "", false, nil
		}
		return "", false, err
	}
	v, ok := data[key]
	if !ok && !optional {
		return "", false, fmt.Errorf("couldn't find key %s in %s %s/%s", key, src.kind, s.namespace, src.name)
	}
	return v, ok, nil
}

// keySource is the source and key a valueFrom selects, and whether they
// may be missing.
func keySource(from *skiffv1alpha1.EnvVarSource) (envSource, string, bool) {
	if ref := from.SecretKeyRef; ref != nil {
		return envSource{kind: "Secret", name: ref.Name}, ref.Key, isTrue(ref.Optional)
	}
	ref := from.ConfigMapKeyRef
	return envSource{kind: "ConfigMap", name: ref.Name}, ref.Key, isTrue(ref.Optional)
}

func (s *sourceReads) get(ctx context.Context, src envSource) (map[string]string, error) {
	if r, ok := s.done[src]; ok {
		return r.data, r.err
	}
	data, err := s.read(ctx, src)
	if s.done == nil {
		s.done = map[envSource]sourceRead{}
	}
	s.done[src] = sourceRead{data: data, err: err}
	return data, err
}

// read gets the source by name. A missing one is NotFound worded as the
// kubelet words it (secret "db" not found).
func (s *sourceReads) read(ctx context.Context, src envSource) (map[string]string, error) {
	key := client.ObjectKey{Namespace: s.namespace, Name: src.name}
	var err error
	var data map[string]string
	if src.kind == "Secret" {
		var secret corev1.Secret
		if err = s.reader.Get(ctx, key, &secret); err == nil {
			data = make(map[string]string, len(secret.Data))
			for k, v := range secret.Data {
				data[k] = string(v)
			}
		}
	} else {
		var cm corev1.ConfigMap
		if err = s.reader.Get(ctx, key, &cm); err == nil {
			// Data only: the kubelet makes no variables of binaryData.
			data = cm.Data
		}
	}
	switch {
	case apierrors.IsNotFound(err):
		return nil, apierrors.NewNotFound(schema.GroupResource{Resource: src.resource()}, src.name)
	case err != nil:
		return nil, fmt.Errorf("%s %s/%s: %w", src.resource(), s.namespace, src.name, err)
	}
	return data, nil
}

// environment resolves the container's variables. While it cannot, it
// returns the waiting status instead (CreateContainerConfigError), to be
// tried again after the back-off's base, as the kubelet retries a Pod's
// config on its next sync: a Secret created later starts the container
// with nobody touching the Instance.
func (r *instanceReconciler) environment(ctx context.Context, inst *skiffv1alpha1.Instance, id string, c *skiffv1alpha1.Container, restarts int32) ([]string, *containerResult) {
	env, err := resolveEnv(ctx, r.sources, inst.Namespace, c)
	if err != nil {
		msg := shortMessage(err)
		if r.configErrors.tell(id, msg) {
			r.event(ctx, inst, "Failed", "Error: "+msg)
		}
		cs := skiffv1alpha1.ContainerStatus{Name: c.Name, Image: c.Image, RestartCount: restarts}
		cs.State.Waiting = &skiffv1alpha1.ContainerStateWaiting{Reason: "CreateContainerConfigError", Message: msg}
		return nil, &containerResult{status: cs, retryAt: time.Now().Add(r.backoff.Base)}
	}
	r.configErrors.clear(id)
	for _, s := range env.skipped {
		r.event(ctx, inst, "InvalidEnvironmentVariableNames", fmt.Sprintf(
			"Keys [%s] from the EnvFrom %s %s/%s were skipped since they are considered invalid environment variable names.",
			strings.Join(s.keys, ", "), envFromWord(s.src), inst.Namespace, s.src.name))
	}
	return env.vars, nil
}

// envFromWord is how the kubelet's Event names the source's kind.
func envFromWord(src envSource) string {
	if src.kind == "Secret" {
		return "secret"
	}
	return "configMap"
}

// configErrors remembers each waiting container's last config error, so
// that its Event is recorded once per error rather than at every retry.
type configErrors struct {
	mu sync.Mutex
	m  map[string]string
}

// tell reports whether msg is new for id, and remembers it.
func (e *configErrors) tell(id, msg string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil {
		e.m = map[string]string{}
	}
	if e.m[id] == msg {
		return false
	}
	e.m[id] = msg
	return true
}

func (e *configErrors) clear(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.m, id)
}
