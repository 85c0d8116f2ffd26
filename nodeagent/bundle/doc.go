// Package bundle builds OCI runtime bundles: the config.json that youki,
// runc or crun run, as a pure function of what to run (Spec) so that it is
// tested by tables. The spec is hardened by default as containerd's is: the
// 14 default capabilities only, no new privileges, masked and read-only
// kernel paths, a device cgroup that denies all but the standard devices,
// and an RLIMIT_NOFILE. Input's security fields loosen or tighten it as a
// Kubernetes security context does (a read-only root, other capabilities,
// no seccomp filter, privilege escalation, a privileged container); the
// agent decides them (ChangeCapabilities, HostDevices) and Spec applies
// them.
package bundle
