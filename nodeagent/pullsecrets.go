package nodeagent

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/nodeagent/image"
)

// An Instance's imagePullSecrets are read by name at every pull with the
// node's direct client, as envFrom sources are (the node authorizer lets
// a node get exactly the Secrets its Instances reference). As the kubelet
// does, a Secret that cannot be read is skipped with a Warning Event and
// the pull goes on without it; a Secret whose docker config cannot be
// parsed fails the pull. Credentials go nowhere but into the registry's
// requests: errors and Events name Secrets and registries only.

// pullOptions are the pull policy and credentials of c's image.
func (r *instanceReconciler) pullOptions(ctx context.Context, inst *skiffv1alpha1.Instance, id string, c *skiffv1alpha1.Container) (image.PullOptions, error) {
	opts := image.PullOptions{Policy: pullPolicy(c)}
	if opts.Policy == image.Never || len(inst.Spec.ImagePullSecrets) == 0 {
		return opts, nil
	}
	keyring, missing, err := readPullSecrets(ctx, r.sources, inst)
	if len(missing) > 0 {
		msg := fmt.Sprintf("Unable to retrieve some image pull secrets (%s); attempting to pull the image may not succeed.", strings.Join(missing, ", "))
		if r.pulls.tellNotice(id, msg) {
			r.event(ctx, inst, "FailedToRetrieveImagePullSecret", msg)
		}
	}
	opts.Keyring = keyring
	return opts, err
}

// pullPolicy is c's pull policy for the image store. An Instance stored
// before the API defaulted the field gets the default now.
func pullPolicy(c *skiffv1alpha1.Container) image.PullPolicy {
	p := c.ImagePullPolicy
	if p == "" {
		p = skiffv1alpha1.DefaultPullPolicy(c.Image)
	}
	switch p {
	case skiffv1alpha1.PullAlways:
		return image.Always
	case skiffv1alpha1.PullNever:
		return image.Never
	default:
		return image.IfNotPresent
	}
}

// readPullSecrets reads inst's pull Secrets into a keyring, in order. It
// returns the names of those it could not read, and an error for one that
// holds no valid docker config.
func readPullSecrets(ctx context.Context, reader client.Reader, inst *skiffv1alpha1.Instance) (*image.Keyring, []string, error) {
	keyring := &image.Keyring{}
	var missing []string
	for _, ref := range inst.Spec.ImagePullSecrets {
		var s corev1.Secret
		if err := reader.Get(ctx, client.ObjectKey{Namespace: inst.Namespace, Name: ref.Name}, &s); err != nil {
			klog.V(2).InfoS("unable to retrieve pull secret", "instance", client.ObjectKeyFromObject(inst), "secret", ref.Name, "err", err)
			missing = append(missing, ref.Name)
			continue
		}
		if err := addPullSecret(keyring, &s); err != nil {
			return nil, missing, fmt.Errorf("image pull secret %s/%s: %w", inst.Namespace, ref.Name, err)
		}
	}
	return keyring, missing, nil
}

// addPullSecret adds s's credentials to keyring. As for the kubelet, only
// a kubernetes.io/dockerconfigjson (or legacy kubernetes.io/dockercfg)
// Secret has any.
func addPullSecret(keyring *image.Keyring, s *corev1.Secret) error {
	switch {
	case s.Type == corev1.SecretTypeDockerConfigJson && len(s.Data[corev1.DockerConfigJsonKey]) > 0:
		if err := keyring.AddDockerConfigJSON(s.Data[corev1.DockerConfigJsonKey]); err != nil {
			return fmt.Errorf("key %s: %w", corev1.DockerConfigJsonKey, err)
		}
	case s.Type == corev1.SecretTypeDockercfg && len(s.Data[corev1.DockerConfigKey]) > 0:
		if err := keyring.AddDockercfg(s.Data[corev1.DockerConfigKey]); err != nil {
			return fmt.Errorf("key %s: %w", corev1.DockerConfigKey, err)
		}
	}
	return nil
}
