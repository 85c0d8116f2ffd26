package e2e

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
)

// skiffCmd runs the skiff binary and returns its combined output and error.
func skiffCmd(args ...string) (string, error) {
	out, err := exec.Command(skiffBin, args...).CombinedOutput()
	return string(out), err
}

func TestCLI(t *testing.T) {
	requireE2E(t)

	t.Run("version", func(t *testing.T) {
		out, err := skiffCmd("version")
		if err != nil || !strings.HasPrefix(out, "skiff ") || !strings.Contains(out, "Kubernetes API 1.37") {
			t.Fatalf("skiff version: %v\n%s", err, out)
		}
	})

	t.Run("kubeconfig prints a working admin kubeconfig", func(t *testing.T) {
		s := startServer(t, t.TempDir(), "127.0.0.1:0")
		out, err := skiffCmd("kubeconfig", "--data-dir", s.dataDir)
		if err != nil {
			t.Fatalf("skiff kubeconfig: %v\n%s", err, out)
		}
		path := filepath.Join(t.TempDir(), "printed.kubeconfig")
		if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
			t.Fatal(err)
		}
		r := s.run(path, "get", "namespaces", "-o", "name")
		if r.ExitCode != 0 || !strings.Contains(r.Stdout, "namespace/skiff-system") {
			t.Fatalf("kubectl with the printed kubeconfig: exit %d\n%s%s", r.ExitCode, r.Stdout, r.Stderr)
		}
	})

	t.Run("kubeconfig --renew renews the admin's year-long certificate", func(t *testing.T) {
		s := startServer(t, t.TempDir(), "127.0.0.1:0")
		before := adminCert(t, s.kubeconfig)
		if life := before.NotAfter.Sub(before.NotBefore); life > 367*24*time.Hour {
			t.Errorf("the admin's client certificate lives %v, want a year", life)
		}
		cmd := exec.Command(skiffBin, "kubeconfig", "--renew", "--data-dir", s.dataDir)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil || !strings.Contains(stderr.String(), "renewed") {
			t.Fatalf("skiff kubeconfig --renew: %v\n%s", err, stderr.String())
		}
		after := adminCert(t, s.kubeconfig)
		if after.SerialNumber.Cmp(before.SerialNumber) == 0 {
			t.Fatal("admin.kubeconfig still holds the old certificate")
		}
		path := filepath.Join(t.TempDir(), "renewed.kubeconfig")
		if err := os.WriteFile(path, out, 0o600); err != nil {
			t.Fatal(err)
		}
		if printed := adminCert(t, path); printed.SerialNumber.Cmp(after.SerialNumber) != 0 {
			t.Error("the printed kubeconfig is not the renewed one")
		}
		if r := s.run(path, "get", "namespaces", "-o", "name"); r.ExitCode != 0 {
			t.Fatalf("kubectl with the renewed kubeconfig: exit %d\n%s%s", r.ExitCode, r.Stdout, r.Stderr)
		}
	})

	t.Run("kubeconfig without a data dir names the problem", func(t *testing.T) {
		out, err := skiffCmd("kubeconfig", "--data-dir", filepath.Join(t.TempDir(), "none"))
		if err == nil || !strings.Contains(out, "skiff server --data-dir") {
			t.Fatalf("skiff kubeconfig on a missing data dir: %v\n%s", err, out)
		}
	})

	t.Run("bad flags are refused by name", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"server", "--data-dir", t.TempDir(), "--listen", "nonsense"}, "--listen"},
			{[]string{"server", "--data-dir", t.TempDir(), "--etcd-prefix", "registry"}, "--etcd-prefix"},
			{[]string{"server", "--data-dir", t.TempDir(), "--etcd-cafile", "/x"}, "--etcd-servers"},
		} {
			out, err := skiffCmd(tc.args...)
			if err == nil || !strings.Contains(out, tc.want) {
				t.Errorf("skiff %v: %v\n%s (want an error naming %s)", tc.args, err, out, tc.want)
			}
		}
	})
}

// TestServerDataDirAndCleanStop: a second server on a data directory in
// use exits at once, naming the process, and leaves the first one's
// kubeconfig alone; the first then stops on SIGTERM without an error line.
func TestServerDataDirAndCleanStop(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir, "127.0.0.1:0")
	// Up: the workload and node lifecycle controllers have acted (a stop
	// while controllers still wait for their caches is another matter).
	s.mustKubectl(t, "apply", "-f", writeFile(t, "up.yaml", `apiVersion: skiff.dev/v1alpha1
kind: Node
metadata:
  name: up
---
apiVersion: skiff.dev/v1alpha1
kind: Workload
metadata:
  name: up
  namespace: default
spec:
  replicas: 0
  template:
    metadata:
      labels: {app: up}
    spec:
      containers: [{name: c, image: x}]
`))
	waitFor(t, 60*time.Second, func() (bool, error) {
		gen, _ := s.kubectl("get", "workload", "up", "-o", "jsonpath={.status.observedGeneration}")
		member, _ := s.kubectl("get", "node", "up", "-o", `jsonpath={.status.conditions[?(@.type=="MemberAlive")].reason}`)
		return gen == "1" && member != "", nil
	})
	before, err := os.ReadFile(s.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, skiffBin, "server", "--data-dir", dir, "--listen", "127.0.0.1:0", "--disable-agent", "--gossip-bind", "127.0.0.1:0").CombinedOutput()
	if err == nil || ctx.Err() != nil || !strings.Contains(string(out), fmt.Sprintf("data directory in use: %s is locked by process %d", dir, s.pid())) {
		t.Errorf("a second server on %s: %v\n%s\nwant an exit at once naming process %d", dir, err, out, s.pid())
	}
	if after, _ := os.ReadFile(s.kubeconfig); string(after) != string(before) {
		t.Error("the second server rewrote admin.kubeconfig")
	}
	if err := s.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	log, _ := os.ReadFile(s.logPath)
	for _, line := range strings.Split(string(log), "\n") {
		if strings.HasPrefix(line, "E") || strings.Contains(line, `"level":"error"`) {
			t.Errorf("a clean stop logged an error: %s", line)
		}
	}
}

// adminCert is the client certificate in a kubeconfig.
func adminCert(t *testing.T, kubeconfig string) *x509.Certificate {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range cfg.AuthInfos {
		block, _ := pem.Decode(u.ClientCertificateData)
		if block == nil {
			t.Fatalf("%s: no client-certificate-data", kubeconfig)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return cert
	}
	t.Fatalf("%s: no user", kubeconfig)
	return nil
}
