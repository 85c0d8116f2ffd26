package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"skiff.dev/skiff/identity"
	"skiff.dev/skiff/version"
)

// agentEnvFile is the agent's environment file (agentRole.envFile): the
// server's URL and where the join token is.
func agentEnvFile(server string) []byte {
	return []byte(installMarker + "agent` (skiff " + version.Version + "); `skiff uninstall agent` removes it.\n" +
		"# The flags given to skiff install are on the unit's ExecStart; SKIFF_AGENT_ARGS here adds to them.\n" +
		"SKIFF_SERVER=" + server + "\n" +
		"SKIFF_JOIN_TOKEN=" + agentJoinToken + "\n")
}

// writeFiles writes r's files beneath the root: the binary, (agent) the
// join token and the environment file, and the unit.
func (in *installer) writeFiles(r *role, bin, unit, token string, envFile []byte) error {
	if err := in.installBinary(bin); err != nil {
		return err
	}
	if r == agentRole {
		if err := in.writeFile(agentJoinToken, []byte(token+"\n"), 0o600); err != nil {
			return err
		}
		if err := in.backUp(r.envFile); err != nil {
			return err
		}
		if err := in.writeFile(r.envFile, envFile, 0o644); err != nil {
			return err
		}
	} else if _, err := os.Stat(in.path(r.envFile)); err == nil {
		fmt.Fprintf(in.out, "note: %s exists; its SKIFF_SERVER_ARGS still apply, after the flags given here\n", in.path(r.envFile))
	}
	return in.writeFile(filepath.Join(unitDir, r.unit()), []byte(unit), 0o644)
}

// installBinary copies this binary to bin (beneath the root), by a rename
// so that a running service's binary is replaced whole; when bin is this
// binary already, it does nothing.
func (in *installer) installBinary(bin string) error {
	self, err := in.executable()
	if err != nil {
		return fmt.Errorf("this binary: %w", err)
	}
	if self, err = filepath.EvalSymlinks(self); err != nil {
		return fmt.Errorf("this binary: %w", err)
	}
	dst := in.path(bin)
	src, err := os.Open(self)
	if err != nil {
		return fmt.Errorf("this binary: %w", err)
	}
	defer src.Close()
	si, err := src.Stat()
	if err != nil {
		return fmt.Errorf("this binary: %w", err)
	}
	if di, err := os.Stat(dst); err == nil && os.SameFile(si, di) {
		fmt.Fprintf(in.out, "%s is this binary (skiff %s)\n", dst, version.Version)
		return nil
	}
	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--bin-dir: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".skiff-install-*")
	if err != nil {
		return fmt.Errorf("--bin-dir: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = io.Copy(tmp, src)
	if err == nil {
		err = tmp.Chmod(0o755)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		return fmt.Errorf("installing %s: %w", dst, err)
	}
	fmt.Fprintf(in.out, "installed %s (skiff %s)\n", dst, version.Version)
	return nil
}

// writeFile writes p (beneath the root) whole, making its directories.
func (in *installer) writeFile(p string, data []byte, perm os.FileMode) error {
	dst := in.path(p)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := identity.WriteFileAtomic(dst, data, perm); err != nil {
		return fmt.Errorf("writing %s: %w", dst, err)
	}
	fmt.Fprintf(in.out, "wrote %s\n", dst)
	return nil
}

// backUp keeps a file skiff install is about to replace as FILE.bak,
// unless skiff install wrote it.
func (in *installer) backUp(p string) error {
	data, err := os.ReadFile(in.path(p))
	if err != nil || strings.HasPrefix(string(data), installMarker) {
		return nil
	}
	if err := os.Rename(in.path(p), in.path(p)+".bak"); err != nil {
		return err
	}
	fmt.Fprintf(in.out, "kept the previous %s as %s.bak\n", in.path(p), in.path(p))
	return nil
}
