package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"skiff.dev/skiff/apiserver"
	"skiff.dev/skiff/nodeagent/network"
)

func systemdRunning() error {
	if _, err := exec.LookPath("systemctl"); err != nil {
		return errors.New("systemctl is not installed")
	}
	// sd_booted(3): systemd, as PID 1, makes this directory.
	if fi, err := os.Lstat("/run/systemd/system"); err != nil || !fi.IsDir() {
		return errors.New("systemd is not running as PID 1 on this machine (no /run/systemd/system)")
	}
	return nil
}

func runSystemctl(ctx context.Context, args ...string) error {
	c := exec.CommandContext(ctx, "systemctl", args...)
	out, err := c.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// warnMissing says what the node's containers will lack on this machine.
func (in *installer) warnMissing(r *role, fs *pflag.FlagSet) {
	if r == serverRole && fs.Lookup("disable-agent").Value.String() == "true" {
		return
	}
	if rt := fs.Lookup("runtime").Value.String(); rt == "sim" {
		return
	} else if rt == "auto" {
		found := false
		for _, name := range []string{"youki", "crun", "runc"} {
			if _, err := exec.LookPath(name); err == nil {
				found = true
			}
		}
		if !found {
			fmt.Fprintf(in.errOut, "warning: no OCI runtime (youki, crun, runc) is installed: the %s's containers are simulated until one is (apt-get install -y runc; then systemctl restart %s)\n", r.name, r.service)
			return
		}
	}
	if err := network.CheckPlugins(fs.Lookup("cni-plugin-dir").Value.String()); err != nil {
		fmt.Fprintf(in.errOut, "warning: %v: the %s stops at start until they are there\n", err, r.name)
	}
}

// start has systemd load, enable and (re)start r's unit; on a machine
// without systemd it says what to run instead.
func (in *installer) start(ctx context.Context, r *role, enable, bin string, flags []string, server string) error {
	if err := in.systemd(); err != nil {
		args := []string{bin, r.name}
		if r == serverRole {
			tf, _ := templateFlags(r)
			args = append(args, tf...)
		} else {
			args = append(args, "--server", server, "--join-token", agentJoinToken)
		}
		return fmt.Errorf("the files are written, but %v, so %s was not started.\n"+
			"Where systemd runs, start it with\n  %s\nor run skiff in the foreground:\n  %s",
			err, r.service, enable, shellWords(append(args, flags...)))
	}
	if !in.live {
		return fmt.Errorf("the files are written beneath %s, which this machine's systemd does not read, so %s was not started (--no-start says so). "+
			"On the machine that boots from %s, run\n  %s", in.root, r.service, in.root, enable)
	}
	for _, args := range [][]string{{"daemon-reload"}, {"enable", r.service}, {"restart", r.service}} {
		fmt.Fprintf(in.out, "systemctl %s\n", strings.Join(args, " "))
		if err := in.systemctl(ctx, args...); err != nil {
			return fmt.Errorf("systemctl %s: %w\n(systemctl status %s and journalctl -u %s -e say why)", strings.Join(args, " "), err, r.service, r.service)
		}
	}
	fmt.Fprintf(in.out, "%s is running\n", r.service)
	return nil
}

// serverNext prints where the admin kubeconfig is and how nodes join.
func (in *installer) serverNext(dataDir, listen string, noStart bool) {
	kubeconfig := filepath.Join(dataDir, apiserver.AdminKubeconfigFile)
	tokenFile := filepath.Join(dataDir, apiserver.JoinTokenFile)
	when := ""
	if noStart {
		when = " (once the server has started)"
	}
	fmt.Fprintf(in.out, "admin kubeconfig%s: %s\n  export KUBECONFIG=%s\n", when, kubeconfig, kubeconfig)
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return
	}
	if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
		fmt.Fprintf(in.out, "the server listens on %s, so only this machine reaches it: to add nodes, install it again with\n"+
			"  skiff install server -- --listen 0.0.0.0:%s\n", listen, port)
		return
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = in.hostAddress()
	}
	token := "<the token in " + tokenFile + ">"
	if !noStart {
		if t := in.waitFile(in.path(tokenFile)); t != "" {
			token = t
		}
	}
	fmt.Fprintf(in.out, "to add a node, copy %s to it and run there, as root:\n"+
		"  skiff install agent --server https://%s --join-token %s\n", "the skiff binary", net.JoinHostPort(host, port), token)
}

// agentNext prints the Node that joins and the server it joins.
func (in *installer) agentNext(name, server string, noStart bool) {
	fmt.Fprintf(in.out, "node %q joins %s", name, server)
	if !noStart {
		fmt.Fprint(in.out, "; on the server, kubectl get nodes shows it Ready")
	}
	fmt.Fprintln(in.out)
}

// waitFile returns the trimmed content of path once it has some, or ""
// after tokenWait.
func (in *installer) waitFile(path string) string {
	deadline := time.Now().Add(in.tokenWait)
	for {
		if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) != "" {
			return strings.TrimSpace(string(b))
		}
		if time.Now().After(deadline) {
			return ""
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// hostAddress is the address this machine reaches others from (the one
// its default route leaves by), else its first global unicast IPv4
// address, else "HOST".
func hostAddress() string {
	// Connecting a UDP socket sends nothing: it picks the source address.
	if c, err := net.Dial("udp4", "192.0.2.1:9"); err == nil {
		defer c.Close()
		if a, ok := c.LocalAddr().(*net.UDPAddr); ok && a.IP.IsGlobalUnicast() {
			return a.IP.String()
		}
	}
	ifaces, _ := net.Interfaces()
	for _, i := range ifaces {
		if i.Flags&net.FlagUp == 0 || i.Flags&net.FlagLoopback != 0 || i.Name == network.DefaultBridge ||
			strings.HasPrefix(i.Name, "veth") || strings.HasPrefix(i.Name, "docker") {
			continue
		}
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
				return n.IP.String()
			}
		}
	}
	return "HOST"
}
