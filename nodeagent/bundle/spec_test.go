package bundle

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestSpecHardening(t *testing.T) {
	s := Spec(Input{ID: "c1", Rootfs: "/r", Args: []string{"sh"}})
	if !s.Process.NoNewPrivileges {
		t.Error("noNewPrivileges is off")
	}
	if got := s.Process.Capabilities.Bounding; len(got) != 14 || slices.Contains(got, "CAP_SYS_ADMIN") || slices.Contains(got, "CAP_NET_ADMIN") {
		t.Errorf("bounding capabilities %v: want the 14 defaults only", got)
	}
	for _, p := range []string{"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/sys/firmware", "/proc/acpi", "/proc/scsi"} {
		if !slices.Contains(s.Linux.MaskedPaths, p) {
			t.Errorf("%s is not masked", p)
		}
	}
	for _, p := range []string{"/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs"} {
		if !slices.Contains(s.Linux.ReadonlyPaths, p) {
			t.Errorf("%s is not read-only", p)
		}
	}
	devs := s.Linux.Resources.Devices
	if len(devs) == 0 || devs[0].Allow || devs[0].Access != "rwm" || devs[0].Major != nil {
		t.Errorf("device cgroup does not start by denying everything: %+v", devs)
	}
	if len(s.Process.Rlimits) != 1 || s.Process.Rlimits[0].Type != "RLIMIT_NOFILE" {
		t.Errorf("rlimits %+v", s.Process.Rlimits)
	}
	var types []specs.LinuxNamespaceType
	for _, ns := range s.Linux.Namespaces {
		types = append(types, ns.Type)
	}
	for _, want := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.MountNamespace, specs.NetworkNamespace} {
		if !slices.Contains(types, want) {
			t.Errorf("namespaces %v lack %s", types, want)
		}
	}
	if host := Spec(Input{HostNetwork: true}); slices.ContainsFunc(host.Linux.Namespaces, func(ns specs.LinuxNamespace) bool { return ns.Type == specs.NetworkNamespace }) {
		t.Error("hostNetwork still gets its own network namespace")
	}
	files := Spec(Input{Files: []File{{Source: "/var/lib/skiff/agent/rootfs/id/hosts", Destination: "/etc/hosts"}}}).Mounts
	if m := files[len(files)-1]; m.Destination != "/etc/hosts" || m.Type != "bind" || !slices.Contains(m.Options, "ro") {
		t.Errorf("file mount %+v, want /etc/hosts bound read-only", m)
	}
	netns := func(in Input) []specs.LinuxNamespace {
		return slices.DeleteFunc(Spec(in).Linux.Namespaces, func(ns specs.LinuxNamespace) bool { return ns.Type != specs.NetworkNamespace })
	}
	for _, in := range []Input{{NetNS: "/var/lib/skiff/agent/network/netns/uid"}, {HostNetwork: true, NetNS: "/run/netns/host-a"}} {
		if got := netns(in); len(got) != 1 || got[0].Path != in.NetNS {
			t.Errorf("%+v: network namespaces %+v, want to join %s", in, got, in.NetNS)
		}
	}
}

func TestSpecResourcesAndProcess(t *testing.T) {
	cases := []struct {
		name  string
		in    Input
		check func(t *testing.T, s *specs.Spec)
	}{
		{"no limits", Input{ID: "a"}, func(t *testing.T, s *specs.Spec) {
			if s.Linux.Resources.CPU != nil || s.Linux.Resources.Memory != nil || s.Linux.Resources.Pids != nil {
				t.Errorf("limits set: %+v", s.Linux.Resources)
			}
			if s.Process.Cwd != "/" || s.Linux.CgroupsPath != "/skiff/a" {
				t.Errorf("cwd %q cgroups path %q", s.Process.Cwd, s.Linux.CgroupsPath)
			}
		}},
		{"cpu and memory", Input{ID: "b", CPUShares: CPUShares(250), CPUQuota: CPUQuota(500), MemoryLimit: 64 << 20, PidsLimit: 100}, func(t *testing.T, s *specs.Spec) {
			cpu := s.Linux.Resources.CPU
			if *cpu.Shares != 256 || *cpu.Quota != 50000 || *cpu.Period != 100000 {
				t.Errorf("cpu shares %d quota %d period %d, want 256 50000 100000", *cpu.Shares, *cpu.Quota, *cpu.Period)
			}
			if *s.Linux.Resources.Memory.Limit != 64<<20 || *s.Linux.Resources.Pids.Limit != 100 {
				t.Errorf("memory %d pids %d", *s.Linux.Resources.Memory.Limit, *s.Linux.Resources.Pids.Limit)
			}
		}},
		{"process", Input{ID: "c", Args: []string{"httpd", "-f"}, Env: []string{"A=1"}, Cwd: "/srv", UID: 1000, GID: 1000, CgroupParent: "/other"}, func(t *testing.T, s *specs.Spec) {
			p := s.Process
			if !slices.Equal(p.Args, []string{"httpd", "-f"}) || !slices.Equal(p.Env, []string{"A=1"}) || p.Cwd != "/srv" || p.User.UID != 1000 || p.User.GID != 1000 {
				t.Errorf("process %+v", p)
			}
			if s.Linux.CgroupsPath != "/other/c" {
				t.Errorf("cgroups path %q", s.Linux.CgroupsPath)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { tc.check(t, Spec(tc.in)) })
	}
	if CPUShares(1) != 2 {
		t.Errorf("CPUShares(1) = %d, want the minimum 2", CPUShares(1))
	}
}

func TestWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "b")
	if err := Write(dir, Spec(Input{ID: "x", Args: []string{"true"}})); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back specs.Spec
	if err := json.Unmarshal(data, &back); err != nil || back.Process.Args[0] != "true" {
		t.Fatalf("config.json does not read back: %v", err)
	}
}

// TestSpecSecurity checks what each security setting changes in the spec,
// and that everything else stays hardened.
func TestSpecSecurity(t *testing.T) {
	hasMount := func(s *specs.Spec, typ, opt string) bool {
		return slices.ContainsFunc(s.Mounts, func(m specs.Mount) bool { return m.Type == typ && slices.Contains(m.Options, opt) })
	}
	hardened := func(t *testing.T, s *specs.Spec) {
		t.Helper()
		if len(s.Linux.MaskedPaths) == 0 || len(s.Linux.ReadonlyPaths) == 0 || s.Linux.Seccomp == nil || !hasMount(s, "sysfs", "ro") {
			t.Errorf("hardening lost: masked %v, read-only %v, seccomp %v, sysfs read-only %v",
				s.Linux.MaskedPaths, s.Linux.ReadonlyPaths, s.Linux.Seccomp != nil, hasMount(s, "sysfs", "ro"))
		}
		if d := s.Linux.Resources.Devices; len(d) == 0 || d[0].Allow || len(s.Linux.Devices) != 0 {
			t.Errorf("devices opened: cgroup %+v, nodes %+v", d, s.Linux.Devices)
		}
	}
	null := specs.LinuxDevice{Path: "/dev/null", Type: "c", Major: 1, Minor: 3}
	cases := []struct {
		name  string
		in    Input
		check func(t *testing.T, s *specs.Spec)
	}{
		{"default", Input{}, func(t *testing.T, s *specs.Spec) {
			hardened(t, s)
			if s.Root.Readonly || !s.Process.NoNewPrivileges || !slices.Equal(s.Process.Capabilities.Effective, DefaultCapabilities) {
				t.Errorf("root read-only %v, no_new_privs %v, capabilities %v", s.Root.Readonly, s.Process.NoNewPrivileges, s.Process.Capabilities.Effective)
			}
		}},
		{"readOnlyRootFilesystem", Input{ReadonlyRootfs: true, Files: []File{{Source: "/h/termination-log", Destination: "/dev/termination-log", Writable: true}}}, func(t *testing.T, s *specs.Spec) {
			hardened(t, s)
			if !s.Root.Readonly {
				t.Error("root is writable")
			}
			// The runtime's own mounts and a writable file stay writable;
			// no /tmp appears.
			for _, dst := range []string{"/dev", "/dev/shm", "/dev/termination-log"} {
				i := slices.IndexFunc(s.Mounts, func(m specs.Mount) bool { return m.Destination == dst })
				if i < 0 || slices.Contains(s.Mounts[i].Options, "ro") {
					t.Errorf("mount %s missing or read-only: %+v", dst, s.Mounts)
				}
			}
			if slices.ContainsFunc(s.Mounts, func(m specs.Mount) bool { return m.Destination == "/tmp" }) {
				t.Error("a /tmp mount was added")
			}
		}},
		{"allowPrivilegeEscalation", Input{AllowPrivilegeEscalation: true}, func(t *testing.T, s *specs.Spec) {
			hardened(t, s)
			if s.Process.NoNewPrivileges {
				t.Error("no_new_privs is on")
			}
		}},
		{"capabilities", Input{Capabilities: []string{"CAP_CHOWN", "CAP_NET_ADMIN"}}, func(t *testing.T, s *specs.Spec) {
			hardened(t, s)
			c := s.Process.Capabilities
			for _, set := range [][]string{c.Bounding, c.Effective, c.Permitted} {
				if !slices.Equal(set, []string{"CAP_CHOWN", "CAP_NET_ADMIN"}) {
					t.Errorf("capability set %v, want CAP_CHOWN CAP_NET_ADMIN", set)
				}
			}
			if len(c.Inheritable) != 0 || len(c.Ambient) != 0 {
				t.Errorf("inheritable %v ambient %v, want none", c.Inheritable, c.Ambient)
			}
			// The seccomp profile follows the bounding set.
			if !allows(s.Linux.Seccomp, "chown") || allows(s.Linux.Seccomp, "chroot") {
				t.Error("seccomp profile does not follow the capabilities")
			}
		}},
		{"no capabilities", Input{Capabilities: []string{}}, func(t *testing.T, s *specs.Spec) {
			if c := s.Process.Capabilities; len(c.Bounding) != 0 || len(c.Effective) != 0 {
				t.Errorf("capabilities %+v, want none", c)
			}
		}},
		{"seccomp Unconfined", Input{Unconfined: true}, func(t *testing.T, s *specs.Spec) {
			if s.Linux.Seccomp != nil || len(s.Linux.MaskedPaths) == 0 || !s.Process.NoNewPrivileges {
				t.Errorf("seccomp %v, masked %v, no_new_privs %v: want only the filter gone", s.Linux.Seccomp, s.Linux.MaskedPaths, s.Process.NoNewPrivileges)
			}
		}},
		{"privileged", Input{Privileged: true, Capabilities: []string{"CAP_SYS_ADMIN", "CAP_NET_ADMIN"}, Devices: []specs.LinuxDevice{null}}, func(t *testing.T, s *specs.Spec) {
			if s.Linux.Seccomp != nil || s.Linux.MaskedPaths != nil || s.Linux.ReadonlyPaths != nil || s.Process.NoNewPrivileges {
				t.Errorf("seccomp %v, masked %v, read-only %v, no_new_privs %v: want none", s.Linux.Seccomp != nil, s.Linux.MaskedPaths, s.Linux.ReadonlyPaths, s.Process.NoNewPrivileges)
			}
			if !slices.Equal(s.Process.Capabilities.Bounding, []string{"CAP_SYS_ADMIN", "CAP_NET_ADMIN"}) {
				t.Errorf("capabilities %v, want the ones given", s.Process.Capabilities.Bounding)
			}
			if d := s.Linux.Resources.Devices; len(d) != 1 || !d[0].Allow || d[0].Access != "rwm" || d[0].Major != nil {
				t.Errorf("device cgroup %+v, want every device allowed", d)
			}
			if !slices.Equal(s.Linux.Devices, []specs.LinuxDevice{null}) {
				t.Errorf("devices %+v, want the node's", s.Linux.Devices)
			}
			if hasMount(s, "sysfs", "ro") || hasMount(s, "cgroup", "ro") || !hasMount(s, "sysfs", "rw") {
				t.Errorf("mounts %+v: want /sys and its cgroup writable", s.Mounts)
			}
			if got := Spec(Input{}).Mounts; !hasMount(&specs.Spec{Mounts: got}, "sysfs", "ro") {
				t.Error("a privileged spec changed the default mounts")
			}
		}},
		{"privileged without capabilities given", Input{Privileged: true}, func(t *testing.T, s *specs.Spec) {
			if !slices.Equal(s.Process.Capabilities.Effective, AllCapabilities()) {
				t.Errorf("capabilities %v, want all", s.Process.Capabilities.Effective)
			}
		}},
		{"privileged read-only", Input{Privileged: true, ReadonlyRootfs: true}, func(t *testing.T, s *specs.Spec) {
			if !s.Root.Readonly {
				t.Error("privileged lost readOnlyRootFilesystem")
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { tc.check(t, Spec(tc.in)) })
	}
}

// TestSpecVolumeMounts: volumes are bind mounts after the default mounts
// and before the files (a volume at /etc must not hide /etc/hosts), read
// only where asked; the fsGroup joins the process's groups.
func TestSpecVolumeMounts(t *testing.T) {
	s := Spec(Input{ID: "c", Rootfs: "/r", Args: []string{"sh"},
		Mounts:         []Mount{{Source: "/v/data", Destination: "/data"}, {Source: "/v/etc", Destination: "/etc", ReadOnly: true}},
		Files:          []File{{Source: "/i/hosts", Destination: "/etc/hosts"}},
		AdditionalGids: []uint32{3000},
	})
	var got []string
	for _, m := range s.Mounts[len(defaultMounts()):] {
		got = append(got, m.Destination+" "+strings.Join(m.Options, ","))
	}
	want := []string{"/data rbind,rprivate,rw", "/etc rbind,rprivate,ro", "/etc/hosts rbind,ro,nosuid,nodev,noexec"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("mounts %q, want %q", got, want)
	}
	if g := s.Process.User.AdditionalGids; len(g) != 1 || g[0] != 3000 {
		t.Errorf("additional gids %v, want [3000]", g)
	}
}
