package bundle

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// capabilities are the process's capability sets: in.Capabilities, else
// the defaults, or every known one for a privileged container.
func (in Input) capabilities() []string {
	switch {
	case in.Capabilities != nil:
		return slices.Clone(in.Capabilities)
	case in.Privileged:
		return AllCapabilities()
	}
	return slices.Clone(DefaultCapabilities)
}

// unharden turns the hardened spec s into a privileged one, as
// containerd's WithPrivileged, WithHostDevices and WithAllDevicesAllowed
// do (and Docker's --privileged): the kernel's paths unmasked and
// writable, /sys and the cgroup file system writable, the node's devices
// made and every device allowed. The capabilities and seccomp are Spec's.
func unharden(s *specs.Spec, devices []specs.LinuxDevice) {
	s.Linux.MaskedPaths, s.Linux.ReadonlyPaths = nil, nil
	for i, m := range s.Mounts {
		if m.Type == "sysfs" || m.Type == "cgroup" {
			s.Mounts[i].Options = slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool { return o == "ro" })
			s.Mounts[i].Options = append(s.Mounts[i].Options, "rw")
		}
	}
	s.Linux.Devices = slices.Clone(devices)
	s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
}

// skippedDevDirs hold no devices to copy into a container: its runtime
// mounts its own pts, shm and mqueue, and the others are links or the
// private state of container managers and udev, as containerd skips them.
var skippedDevDirs = []string{"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"}

// HostDevices lists the character and block devices under /dev, for a
// privileged container; the console, links and the directories
// skippedDevDirs names are left out.
func HostDevices() ([]specs.LinuxDevice, error) {
	return devicesUnder("/dev")
}

func devicesUnder(dir string) ([]specs.LinuxDevice, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("host devices: %w", err)
	}
	var out []specs.LinuxDevice
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		switch {
		case e.IsDir() && slices.Contains(skippedDevDirs, e.Name()):
			continue
		case e.IsDir():
			sub, err := devicesUnder(path)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
			continue
		case e.Name() == "console" || e.Type()&(fs.ModeDevice|fs.ModeCharDevice) == 0:
			continue
		}
		d, err := device(path)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDevice) {
			continue // gone or replaced since the listing
		}
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

var errNotDevice = errors.New("not a device")

// device describes the device node at path as the runtime spec does.
func device(path string) (specs.LinuxDevice, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return specs.LinuxDevice{}, fmt.Errorf("host device %s: %w", path, err)
	}
	var typ string
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		typ = "c"
	case unix.S_IFBLK:
		typ = "b"
	default:
		return specs.LinuxDevice{}, errNotDevice
	}
	mode := fs.FileMode(st.Mode & 0o777)
	uid, gid := st.Uid, st.Gid
	return specs.LinuxDevice{
		Path: path, Type: typ,
		Major: int64(unix.Major(uint64(st.Rdev))), Minor: int64(unix.Minor(uint64(st.Rdev))),
		FileMode: &mode, UID: &uid, GID: &gid,
	}, nil
}
