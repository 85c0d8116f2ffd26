package bundle

import (
	goruntime "runtime"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// allows reports whether p lets name through: some rule with the allow
// action lists it, with or without argument conditions.
func allows(p *specs.LinuxSeccomp, name string) bool {
	for _, rule := range p.Syscalls {
		if rule.Action == specs.ActAllow && slices.Contains(rule.Names, name) {
			return true
		}
	}
	return false
}

func TestSpecSeccomp(t *testing.T) {
	p := Spec(Input{ID: "c1", Rootfs: "/r", Args: []string{"sh"}}).Linux.Seccomp
	if p == nil {
		t.Fatal("the default spec has no seccomp profile")
	}
	if p.DefaultAction != specs.ActErrno {
		t.Errorf("default action %q, want %q", p.DefaultAction, specs.ActErrno)
	}
	native := map[string]specs.Arch{"amd64": specs.ArchX86_64, "arm64": specs.ArchAARCH64}
	if want, ok := native[goruntime.GOARCH]; ok && !slices.Contains(p.Architectures, want) {
		t.Errorf("architectures %v lack the native %s", p.Architectures, want)
	}
	for _, name := range []string{"read", "write", "exit_group", "execve", "openat", "chroot"} {
		if !allows(p, name) {
			t.Errorf("%s is not allowed", name)
		}
	}
	// chroot is allowed above because CAP_SYS_CHROOT is a default; these
	// need capabilities the defaults lack, or no capability makes them safe.
	for _, name := range []string{"kexec_load", "open_by_handle_at", "init_module", "mount", "bpf", "reboot"} {
		if allows(p, name) {
			t.Errorf("%s is allowed", name)
		}
	}
	if got := Spec(Input{ID: "c2", Unconfined: true}).Linux.Seccomp; got != nil {
		t.Errorf("Unconfined: seccomp %+v, want none", got)
	}
}

// TestDefaultSeccompFollowsCapabilities checks that the profile is computed
// against the spec's bounding set, not a fixed one.
func TestDefaultSeccompFollowsCapabilities(t *testing.T) {
	s := Spec(Input{ID: "c"})
	caps := append(slices.Clone(DefaultCapabilities), "CAP_SYS_ADMIN", "CAP_SYS_MODULE")
	s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps}
	p, err := DefaultSeccomp(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"mount", "init_module"} {
		if !allows(p, name) {
			t.Errorf("%s is not allowed with its capability", name)
		}
	}
	none, err := DefaultSeccomp(&specs.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	if none.DefaultAction != specs.ActErrno || allows(none, "chroot") || !allows(none, "read") {
		t.Errorf("a spec without capabilities: default %q, chroot %v, read %v", none.DefaultAction, allows(none, "chroot"), allows(none, "read"))
	}
}
