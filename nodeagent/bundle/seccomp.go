package bundle

import (
	"fmt"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// DefaultSeccomp returns Docker's and containerd's default seccomp profile
// for s. It denies by default: a system call the profile does not list
// fails with EPERM. Calls that only a capability makes legitimate (mount and
// setns with CAP_SYS_ADMIN, init_module with CAP_SYS_MODULE, ...) are
// allowed only if s's bounding set holds that capability, so s must be the
// final spec. The profile also depends on the node: it lists the native
// architecture and its compat ones (x86_64, x86 and x32 on amd64; aarch64
// and arm on arm64) and drops rules the running kernel is too old for.
func DefaultSeccomp(s *specs.Spec) (*specs.LinuxSeccomp, error) {
	if s.Process == nil || s.Process.Capabilities == nil {
		// The profile reads the bounding set; build it for none rather
		// than fail, which gives the narrowest profile.
		cp := *s
		cp.Process = &specs.Process{Capabilities: &specs.LinuxCapabilities{}}
		s = &cp
	}
	p, err := seccomp.GetDefaultProfile(s)
	if err != nil {
		return nil, fmt.Errorf("default seccomp profile: %w", err)
	}
	return p, nil
}

// seccompOrDenyAll is DefaultSeccomp for Spec, which returns no error. The
// profile fails only when the kernel version cannot be read; a container
// then gets a filter that denies every call and so fails to start
// (its execve is denied) instead of running unconfined.
func seccompOrDenyAll(s *specs.Spec) *specs.LinuxSeccomp {
	p, err := DefaultSeccomp(s)
	if err != nil {
		return &specs.LinuxSeccomp{DefaultAction: specs.ActErrno}
	}
	return p
}
