package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"skiff.dev/skiff/nodeagent/network"
)

// installed is what skiff install left of a role on the machine.
type installed struct {
	role *role
	// unit is true when the role's unit file is there.
	unit bool
	// bin is the binary its ExecStart runs; dataDir its data directory
	// (as the machine sees them).
	bin, dataDir string
	// words are its ExecStart's.
	words []string
}

// runsAgent says whether the role makes the machine a node: an agent, or a
// server with its local agent.
func (it installed) runsAgent() bool {
	if it.role == agentRole {
		return true
	}
	for _, w := range it.words {
		if w == "--disable-agent" || w == "--disable-agent=true" {
			return false
		}
	}
	return true
}

// inspect reads r's unit, and its environment file's further flags, for
// the binary and the data directory.
func (in *installer) inspect(r *role) installed {
	it := installed{role: r, dataDir: r.defaultDataDir}
	data, err := os.ReadFile(in.path(filepath.Join(unitDir, r.unit())))
	if err != nil {
		return it
	}
	it.unit = true
	line, err := execStart(string(data))
	if err != nil {
		return it
	}
	words, err := execWords(line)
	if err != nil || len(words) == 0 {
		return it
	}
	it.words = words
	if filepath.IsAbs(words[0]) {
		it.bin = words[0]
	}
	// SKIFF_*_ARGS come last on ExecStart: their --data-dir wins.
	words = append(words, envArgs(in.path(r.envFile), strings.TrimPrefix(r.argsVar, "$"))...)
	for i, w := range words {
		v, ok := strings.CutPrefix(w, "--data-dir=")
		if w == "--data-dir" && i+1 < len(words) {
			v, ok = words[i+1], true
		}
		if ok && filepath.IsAbs(v) && !strings.Contains(v, "$") {
			it.dataDir = filepath.Clean(v)
		}
	}
	return it
}

// envArgs is the words of variable name in an environment file, split at
// blanks as systemd splits an unquoted $NAME on ExecStart.
func envArgs(path, name string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var words []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), name+"="); ok {
			v = strings.TrimSpace(v)
			if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
				v = v[1 : len(v)-1]
			}
			words = strings.Fields(v)
		}
	}
	return words
}

// uninstall stops and removes the roles given (explicit: named on the
// command line, so it says when one is not installed), then the binary
// once no skiff unit is left; the data directories go with f.purge.
func (in *installer) uninstall(ctx context.Context, which []*role, explicit bool, f installFlags) error {
	var its []installed
	for _, r := range which {
		its = append(its, in.inspect(r))
	}
	sdErr := in.systemd()
	if in.live {
		if err := in.stopServices(ctx, its, sdErr); err != nil {
			return err
		}
		if err := in.checkNotRunning(its); err != nil {
			return err
		}
	}
	var errs []error
	for _, it := range its {
		errs = append(errs, in.removeRole(it, explicit, f)...)
	}
	if f.purge {
		in.removeEmptyDir(systemDataDir)
	}
	errs = append(errs, in.removeBinary(its, f)...)
	if in.live && sdErr == nil {
		errs = append(errs, in.systemctl(ctx, "daemon-reload"))
	}
	return errors.Join(errs...)
}

// stopServices disables and stops, with systemctl, the services of the
// roles whose unit is installed; without systemd (sdErr) it says so of
// each. A failure stops the uninstall before anything is removed.
func (in *installer) stopServices(ctx context.Context, its []installed, sdErr error) error {
	for _, it := range its {
		if !it.unit {
			continue
		}
		if sdErr != nil {
			fmt.Fprintf(in.out, "%v: %s is not stopped by systemctl\n", sdErr, it.role.service)
			continue
		}
		fmt.Fprintf(in.out, "systemctl disable --now %s\n", it.role.service)
		if err := in.systemctl(ctx, "disable", "--now", it.role.service); err != nil {
			return fmt.Errorf("systemctl disable --now %s: %w; nothing was removed", it.role.service, err)
		}
	}
	return nil
}

// checkNotRunning fails when a role still runs on its data directory, by
// hand or under systemd still: its containers and data are in use.
func (in *installer) checkNotRunning(its []installed) error {
	for _, it := range its {
		if _, err := os.Stat(in.path(it.dataDir)); !it.unit && err != nil {
			continue
		}
		if pids := in.processes(it.role.name, it.dataDir); len(pids) > 0 {
			return fmt.Errorf("skiff %s still runs on %s (process %s): stop it, then run skiff uninstall again; nothing was removed", it.role.name, it.dataDir, strings.Join(pids, ", "))
		}
	}
	return nil
}

// removeRole removes what skiff install left of one role: its node's
// containers and mounts (live), its unit, the agent's join token, its
// environment file if skiff install wrote it, and with f.purge its data
// directory. It returns the errors met on the way.
func (in *installer) removeRole(it installed, explicit bool, f installFlags) []error {
	var errs []error
	r := it.role
	if !it.unit && explicit {
		fmt.Fprintf(in.out, "%s is not installed (no %s)\n", r.service, in.path(filepath.Join(unitDir, r.unit())))
	}
	data := in.path(it.dataDir)
	if _, err := os.Stat(data); err == nil {
		if in.live {
			errs = append(errs, in.stopNode(r, data)...)
		}
	}
	errs = append(errs, in.remove(filepath.Join(unitDir, r.unit())))
	if r == agentRole {
		errs = append(errs, in.remove(agentJoinToken))
		in.removeEmptyDir(filepath.Dir(agentJoinToken))
	}
	if b, err := os.ReadFile(in.path(r.envFile)); err == nil {
		if strings.HasPrefix(string(b), installMarker) {
			errs = append(errs, in.remove(r.envFile))
		} else {
			fmt.Fprintf(in.out, "kept %s (skiff install did not write it)\n", in.path(r.envFile))
		}
	}
	if _, err := os.Stat(data); err != nil {
		return errs
	}
	if !f.purge {
		fmt.Fprintf(in.out, "kept %s, the %s's data (etcd, certificates, keys, images, logs): skiff uninstall %s --purge removes it\n", data, r.name, r.name)
		return errs
	}
	if err := purgeDataDir(data, in.live); err != nil {
		return append(errs, err)
	}
	fmt.Fprintf(in.out, "removed %s\n", data)
	return errs
}

// stopNode stops the containers of r's node kept beneath its data
// directory data, and detaches what is mounted there.
func (in *installer) stopNode(r *role, data string) []error {
	var errs []error
	if n, err := stopContainers(filepath.Join(data, r.runtimeState)); err != nil {
		errs = append(errs, err)
	} else if n > 0 {
		fmt.Fprintf(in.out, "stopped %d containers of %s's node; the %s bridge and the iptables rules of its Instances' network stay until reboot (ip link delete %s)\n", n, r.service, network.DefaultBridge, network.DefaultBridge)
	}
	if err := unmountBeneath(data); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// removeBinary removes the binary the roles' units ran (or the one in
// f.binDir) once no skiff unit is left: it goes with the last unit that
// runs it.
func (in *installer) removeBinary(its []installed, f installFlags) []error {
	for _, r := range roles {
		if _, err := os.Stat(in.path(filepath.Join(unitDir, r.unit()))); err == nil {
			return nil
		}
	}
	bins := map[string]bool{}
	for _, it := range its {
		if it.bin != "" {
			bins[it.bin] = true
		}
	}
	if len(bins) == 0 {
		bins[filepath.Join(f.binDir, "skiff")] = true
	}
	var errs []error
	for bin := range bins {
		if filepath.Base(bin) != "skiff" {
			// A hand-edited unit starting another program (env, taskset).
			fmt.Fprintf(in.out, "kept %s: not skiff's binary\n", bin)
			continue
		}
		errs = append(errs, in.remove(bin))
	}
	return errs
}

// remove removes p (beneath the root), saying so; a missing p is no error.
func (in *installer) remove(p string) error {
	err := os.Remove(in.path(p))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(in.out, "removed %s\n", in.path(p))
	return nil
}

// removeEmptyDir removes p (beneath the root) if it is an empty directory.
func (in *installer) removeEmptyDir(p string) {
	if entries, err := os.ReadDir(in.path(p)); err == nil && len(entries) == 0 {
		_ = os.Remove(in.path(p))
	}
}

// skiffProcesses are the ids of the processes running `skiff NAME` on
// dataDir: named by their last --data-dir (relative to their working
// directory), or without one, root's default for NAME.
func skiffProcesses(name, dataDir string) []string {
	entries, _ := os.ReadDir("/proc")
	var pids []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		proc := filepath.Join("/proc", e.Name())
		b, err := os.ReadFile(filepath.Join(proc, "cmdline"))
		if err != nil {
			continue
		}
		argv := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
		if len(argv) < 2 || filepath.Base(argv[0]) != "skiff" || argv[1] != name {
			continue
		}
		dir := ""
		for i, a := range argv {
			if v, ok := strings.CutPrefix(a, "--data-dir="); ok {
				dir = v
			} else if a == "--data-dir" && i+1 < len(argv) {
				dir = argv[i+1]
			}
		}
		if dir == "" {
			if fi, err := os.Stat(proc); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 0 {
				continue
			}
			dir = filepath.Join(systemDataDir, name)
		} else if !filepath.IsAbs(dir) {
			cwd, err := os.Readlink(filepath.Join(proc, "cwd"))
			if err != nil {
				continue
			}
			dir = filepath.Join(cwd, dir)
		}
		if filepath.Clean(dir) == filepath.Clean(dataDir) {
			pids = append(pids, e.Name())
		}
	}
	return pids
}

// stopContainers deletes, with --force, the containers an OCI runtime
// keeps in state (the agent's <data-dir>/runtime/state), with whichever
// of youki, crun and runc knows them. It returns how many it stopped.
func stopContainers(state string) (int, error) {
	entries, err := os.ReadDir(state)
	if err != nil || len(entries) == 0 {
		return 0, nil
	}
	var runtimes []string
	for _, name := range []string{"youki", "crun", "runc"} {
		if p, err := exec.LookPath(name); err == nil {
			runtimes = append(runtimes, p)
		}
	}
	n := 0
	var errs []error
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		var last error = errors.New("no OCI runtime (youki, crun, runc) is installed")
		for _, rt := range runtimes {
			out, err := exec.Command(rt, "--root", state, "delete", "--force", e.Name()).CombinedOutput()
			if err == nil {
				last = nil
				break
			}
			last = fmt.Errorf("%s: %w: %s", filepath.Base(rt), err, strings.TrimSpace(string(out)))
		}
		if last != nil {
			errs = append(errs, fmt.Errorf("container %s (in %s): %w", e.Name(), state, last))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// mountsBeneath are the mount points at or beneath dir, deepest first.
func mountsBeneath(dir string) ([]string, error) {
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var mounts []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		p := unescapeMountinfo(fields[4])
		if p == dir || strings.HasPrefix(p, dir+"/") {
			mounts = append(mounts, p)
		}
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
	return mounts, sc.Err()
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 is a blank).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// unmountBeneath detaches every mount at or beneath dir: the containers'
// root file systems, volumes and network namespaces the agent left.
func unmountBeneath(dir string) error {
	mounts, err := mountsBeneath(dir)
	if err != nil {
		return fmt.Errorf("mounts beneath %s: %w", dir, err)
	}
	var errs []error
	for _, m := range mounts {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
		}
	}
	return errors.Join(errs...)
}

// skiffDataDir refuses to let a purge remove what is not a skiff data
// directory: the root or a top-level directory (a --data-dir of / or
// /srv in a hand-edited unit), or one holding none of what a server or
// an agent makes (its lock, etcd, its node key, its runtime state, its image store).
func skiffDataDir(dir string) error {
	clean := filepath.Clean(dir)
	if !filepath.IsAbs(clean) || strings.Count(clean, "/") < 2 {
		return errors.New("not a skiff data directory (too near the root)")
	}
	for _, marker := range []string{"lock", "etcd", "node.key", "runtime", "store", "images"} {
		if _, err := os.Lstat(filepath.Join(clean, marker)); err == nil {
			return nil
		}
	}
	if _, err := os.Stat(clean); errors.Is(err, os.ErrNotExist) {
		return nil // nothing to remove
	}
	return errors.New("not a skiff data directory (none of lock, etcd, node.key, runtime, store or images in it)")
}

// purgeDataDir removes a data directory, unless a server holds its lock
// or something is still mounted beneath it (removing would reach into
// what is mounted: a hostPath volume is the host's own files). With
// unmount, it first detaches what is mounted there.
func purgeDataDir(dir string, unmount bool) error {
	if err := skiffDataDir(dir); err != nil {
		return fmt.Errorf("not removing %s: %w", dir, err)
	}
	if unmount {
		if err := unmountBeneath(dir); err != nil {
			return fmt.Errorf("not removing %s: %w", dir, err)
		}
	}
	if mounts, err := mountsBeneath(dir); err != nil || len(mounts) > 0 {
		return fmt.Errorf("not removing %s: still mounted beneath it: %v %v", dir, mounts, err)
	}
	if f, err := os.Open(filepath.Join(dir, "lock")); err == nil {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("not removing %s: a skiff server runs on it (it holds %s)", dir, filepath.Join(dir, "lock"))
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing %s: %w", dir, err)
	}
	return nil
}
