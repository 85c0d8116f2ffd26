package nodeagent

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/nodeagent/bundle"
)

// The host's name resolution, as containers of the node's namespace see it.
const (
	hostHosts       = "/etc/hosts"
	hostResolvConf  = "/etc/resolv.conf"
	systemdResolved = "/run/systemd/resolve/resolv.conf"
)

// etcFiles gives a container its /etc/hosts and /etc/resolv.conf. With
// hostNetwork they are the node's own. Otherwise they are written into
// dir (the container's, removed with it): hosts names the Instance at its
// address, and resolv.conf is the node's without loopback nameservers,
// which mean nothing in the Instance's namespace (systemd-resolved's stub
// gives way to the servers it uses, as the kubelet does).
func etcFiles(dir string, inst *skiffv1alpha1.Instance, ip string) ([]bundle.File, error) {
	if inst.Spec.HostNetwork {
		return []bundle.File{{Source: hostHosts, Destination: "/etc/hosts"}, {Source: hostResolvConf, Destination: "/etc/resolv.conf"}}, nil
	}
	resolv, err := instanceResolvConf(hostResolvConf, systemdResolved)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{
		"hosts":       instanceHosts(hostname(inst), ip),
		"resolv.conf": resolv,
	}
	var out []bundle.File
	for _, name := range []string{"hosts", "resolv.conf"} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, files[name], 0o644); err != nil {
			return nil, fmt.Errorf("container /etc/%s: %w", name, err)
		}
		out = append(out, bundle.File{Source: path, Destination: "/etc/" + name})
	}
	return out, nil
}

// instanceHosts is an Instance's /etc/hosts: loopback, and its name at
// its address.
func instanceHosts(name, ip string) []byte {
	var b bytes.Buffer
	b.WriteString("# Written by skiff for this Instance.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	if ip != "" {
		fmt.Fprintf(&b, "%s\t%s\n", ip, name)
	}
	return b.Bytes()
}

// instanceResolvConf reads the node's resolv.conf (the resolver's own
// when the node's points only at a local stub) and drops loopback
// nameservers. A node without one gives an empty file.
func instanceResolvConf(path, stub string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("node's resolv.conf: %w", err)
	}
	out, kept := filterResolvConf(raw)
	if kept == 0 {
		if alt, err := os.ReadFile(stub); err == nil {
			if out2, kept2 := filterResolvConf(alt); kept2 > 0 {
				return out2, nil
			}
		}
	}
	return out, nil
}

// filterResolvConf drops loopback nameservers and says how many are left.
func filterResolvConf(raw []byte) ([]byte, int) {
	var b bytes.Buffer
	kept := 0
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "nameserver" {
			if ip, err := netip.ParseAddr(f[1]); err == nil && ip.IsLoopback() {
				continue
			}
			kept++
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.Bytes(), kept
}
