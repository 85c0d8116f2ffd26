package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/nodeagent/bundle"
	"skiff.dev/skiff/nodeagent/image"
)

// A container's security context is applied as the kubelet and
// containerd's CRI plugin apply a Pod's: the container's settings over
// the Instance's, runAsUser and runAsGroup over the image's user,
// runAsNonRoot verified against the image's user as its config names it,
// capabilities added to and dropped from the agent's default set. What
// the node cannot or may not run (a privileged container without
// --allow-privileged, an unknown capability, root under runAsNonRoot)
// waits in CreateContainerConfigError, retried like a missing Secret.
// Unlike Kubernetes, no_new_privs stays on unless allowPrivilegeEscalation
// is true (or the container is privileged).

// securityPolicy is what the node lets containers have.
type securityPolicy struct {
	// allowPrivileged lets privileged containers run (--allow-privileged).
	allowPrivileged bool
	// capabilities are the agent's own effective ones: "every capability"
	// for a privileged container or an add of ALL, since the runtime can
	// grant no other (containerd's WithAllCurrentCapabilities).
	capabilities []string
	// hostDevices lists the node's devices for a privileged container.
	hostDevices func() ([]specs.LinuxDevice, error)
}

// newSecurityPolicy is the policy of an agent with --allow-privileged as
// allowPrivileged, granting what this process holds.
func newSecurityPolicy(allowPrivileged bool) securityPolicy {
	return securityPolicy{allowPrivileged: allowPrivileged, capabilities: ownCapabilities(), hostDevices: bundle.HostDevices}
}

// errPrivilegedNotAllowed is the waiting message of a privileged
// container on a node that does not allow them.
var errPrivilegedNotAllowed = errors.New("privileged containers are not allowed on this node (agent --allow-privileged)")

// effectiveSecurityContext is c's security context over inst's, field by
// field, as the kubelet's DetermineEffectiveSecurityContext.
func effectiveSecurityContext(inst *skiffv1alpha1.Instance, c *skiffv1alpha1.Container) skiffv1alpha1.SecurityContext {
	var sc skiffv1alpha1.SecurityContext
	if c.SecurityContext != nil {
		sc = *c.SecurityContext
	}
	if isc := inst.Spec.SecurityContext; isc != nil {
		sc.RunAsUser = firstSet(sc.RunAsUser, isc.RunAsUser)
		sc.RunAsGroup = firstSet(sc.RunAsGroup, isc.RunAsGroup)
		sc.RunAsNonRoot = firstSet(sc.RunAsNonRoot, isc.RunAsNonRoot)
		sc.SeccompProfile = firstSet(sc.SeccompProfile, isc.SeccompProfile)
	}
	return sc
}

func firstSet[T any](a, b *T) *T {
	if a != nil {
		return a
	}
	return b
}

// containerSecurity is what a security context makes of a container's
// bundle.
type containerSecurity struct {
	// user is the user[:group] the process runs as, resolved in the
	// image's /etc/passwd and /etc/group.
	user string
	// capabilities replace the defaults when not nil.
	capabilities []string
	// The rest are bundle.Input's fields of the same names.
	readonlyRootfs, allowPrivilegeEscalation bool
	privileged, unconfined                   bool
}

// security decides what sc makes of a container whose image runs as
// imageUser (nil: no image to ask, as with the sim runtime, which is not
// verified under runAsNonRoot). An error is a config the node refuses:
// its message is the container's waiting message.
func (p securityPolicy) security(sc skiffv1alpha1.SecurityContext, imageUser *string, instance, container string) (containerSecurity, error) {
	privileged := isTrue(sc.Privileged)
	if privileged && !p.allowPrivileged {
		return containerSecurity{}, errPrivilegedNotAllowed
	}
	s := containerSecurity{
		privileged: privileged, readonlyRootfs: isTrue(sc.ReadOnlyRootFilesystem),
		allowPrivilegeEscalation: isTrue(sc.AllowPrivilegeEscalation),
		unconfined:               sc.SeccompProfile != nil && sc.SeccompProfile.Type == skiffv1alpha1.SeccompProfileTypeUnconfined,
	}
	var err error
	switch {
	case privileged:
		// Every capability whatever add and drop say, as containerd.
		s.capabilities = p.capabilities
	case sc.Capabilities != nil:
		if s.capabilities, err = bundle.ChangeCapabilities(bundle.DefaultCapabilities, p.capabilities, names(sc.Capabilities.Add), names(sc.Capabilities.Drop)); err != nil {
			return containerSecurity{}, err
		}
	}
	if err := p.withinBaseline(sc, s.unconfined); err != nil {
		return containerSecurity{}, err
	}
	if isTrue(sc.RunAsNonRoot) {
		if err := verifyNonRoot(sc.RunAsUser, imageUser, instance, container); err != nil {
			return containerSecurity{}, err
		}
	}
	s.user = runAs(sc.RunAsUser, sc.RunAsGroup, imageUser)
	return s, nil
}

// withinBaseline refuses, unless the node allows privileged containers,
// what Kubernetes' baseline Pod Security forbids beside privileged:
// capabilities added beyond the default set (SYS_ADMIN, SYS_MODULE, ALL:
// each a way out of the container) and running without a seccomp filter.
func (p securityPolicy) withinBaseline(sc skiffv1alpha1.SecurityContext, unconfined bool) error {
	if p.allowPrivileged {
		return nil
	}
	if sc.Capabilities != nil {
		var beyond []string
		for _, c := range sc.Capabilities.Add {
			name := strings.ToUpper(string(c))
			if !strings.HasPrefix(name, "CAP_") {
				name = "CAP_" + name
			}
			if !slices.Contains(bundle.DefaultCapabilities, name) {
				beyond = append(beyond, string(c))
			}
		}
		if len(beyond) > 0 {
			return fmt.Errorf("adding capabilities beyond the default set (%s) is not allowed on this node (agent --allow-privileged)", strings.Join(beyond, ", "))
		}
	}
	if unconfined {
		return errors.New("seccompProfile Unconfined is not allowed on this node (agent --allow-privileged)")
	}
	return nil
}

func names(caps []skiffv1alpha1.Capability) []string {
	out := make([]string, len(caps))
	for i, c := range caps {
		out[i] = string(c)
	}
	return out
}

// verifyNonRoot refuses a process that would run as root, in the
// kubelet's words: runAsUser 0, or no runAsUser and an image user that is
// root or a name (which the kubelet cannot map to a uid, so neither do
// we, though the image's /etc/passwd might).
func verifyNonRoot(runAsUser *int64, imageUser *string, instance, container string) error {
	where := fmt.Sprintf("(instance: %q, container: %s)", instance, container)
	switch {
	case runAsUser != nil && *runAsUser == 0:
		return fmt.Errorf("container's runAsUser breaks non-root policy %s", where)
	case runAsUser != nil || imageUser == nil:
		return nil
	}
	name, _, _ := strings.Cut(*imageUser, ":")
	if name == "" {
		return fmt.Errorf("container has runAsNonRoot and image will run as root %s", where)
	}
	// The same parse as image.User's, so that what passes here is the uid
	// the process gets (ParseInt would take "+1000" or "-1", which the
	// image's /etc/passwd could then map to root).
	uid, err := strconv.ParseUint(name, 10, 32)
	switch {
	case err != nil:
		return fmt.Errorf("container has runAsNonRoot and image has non-numeric user (%s), cannot verify user is non-root %s", name, where)
	case uid == 0:
		return fmt.Errorf("container has runAsNonRoot and image will run as root %s", where)
	}
	return nil
}

// runAs is the user[:group] the process runs as: runAsUser over the
// image's user, runAsGroup over its group. A runAsUser without runAsGroup
// does not keep the image's group, which was chosen for another user:
// the group is the uid's in the image's /etc/passwd (else 0).
func runAs(runAsUser, runAsGroup *int64, imageUser *string) string {
	var user, group string
	if imageUser != nil {
		user, group, _ = strings.Cut(*imageUser, ":")
	}
	if runAsUser != nil {
		user, group = strconv.FormatInt(*runAsUser, 10), ""
	}
	if runAsGroup != nil {
		group = strconv.FormatInt(*runAsGroup, 10)
	}
	switch {
	case group == "":
		return user
	case user == "":
		return "0:" + group
	}
	return user + ":" + group
}

// applyTo sets s's settings in in, but the user, which the image's files
// resolve.
func (s containerSecurity) applyTo(in *bundle.Input) {
	in.Capabilities = s.capabilities
	in.ReadonlyRootfs, in.AllowPrivilegeEscalation = s.readonlyRootfs, s.allowPrivilegeEscalation
	in.Privileged, in.Unconfined = s.privileged, s.unconfined
}

// imageUser is the user img's config runs as; nil without an image.
func imageUser(img *image.Image) *string {
	if img == nil {
		return nil
	}
	return &img.Config.User
}

// securityOf is c's security as the node's policy allows it.
func (r *instanceReconciler) securityOf(inst *skiffv1alpha1.Instance, c *skiffv1alpha1.Container, img *image.Image) (containerSecurity, error) {
	return r.security.security(effectiveSecurityContext(inst, c), imageUser(img), inst.Namespace+"/"+inst.Name, c.Name)
}

// secure applies c's security context to in: its user and group (the
// image's unless the context says, resolved in the image's files), its
// capabilities, seccomp filter, root file system, no_new_privs and, for a
// privileged container, the node's devices.
func (r *instanceReconciler) secure(in *bundle.Input, inst *skiffv1alpha1.Instance, c *skiffv1alpha1.Container, img *image.Image) error {
	s, err := r.securityOf(inst, c, img)
	if err != nil {
		return err
	}
	s.applyTo(in)
	if s.privileged && r.security.hostDevices != nil {
		if in.Devices, err = r.security.hostDevices(); err != nil {
			return err
		}
	}
	if img == nil {
		return nil
	}
	if in.UID, in.GID, err = image.User(img.Layers, s.user); err != nil {
		return fmt.Errorf("image %s user %q: %w", c.Image, s.user, err)
	}
	if in.UID == 0 && isTrue(effectiveSecurityContext(inst, c).RunAsNonRoot) {
		return fmt.Errorf("container has runAsNonRoot and image will run as root (instance: %q, container: %s)", inst.Namespace+"/"+inst.Name, c.Name)
	}
	return nil
}

// containerConfig is what a container needs beside its image before it
// is made, as the kubelet's generateContainerConfig: a security context
// the node runs, then its environment (environment). While either cannot
// be had it returns the waiting status instead: CreateContainerConfigError
// with the reason, retried after the back-off's base; the Event is
// recorded once per reason.
func (r *instanceReconciler) containerConfig(ctx context.Context, inst *skiffv1alpha1.Instance, id string, c *skiffv1alpha1.Container, img *image.Image, restarts int32) ([]string, *containerResult) {
	if _, err := r.securityOf(inst, c, img); err != nil {
		msg := shortMessage(err)
		if r.configErrors.tell(id, msg) {
			r.event(ctx, inst, "Failed", "Error: "+msg)
		}
		cs := skiffv1alpha1.ContainerStatus{Name: c.Name, Image: c.Image, RestartCount: restarts}
		cs.State.Waiting = &skiffv1alpha1.ContainerStateWaiting{Reason: "CreateContainerConfigError", Message: msg}
		return nil, &containerResult{status: cs, retryAt: time.Now().Add(r.backoff.Base)}
	}
	return r.environment(ctx, inst, id, c, restarts)
}

// ownCapabilities are this process's effective capabilities (none if
// /proc cannot tell).
func ownCapabilities() []string {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return nil
			}
			return bundle.CapabilitiesOf(mask)
		}
	}
	return nil
}
