package e2e

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// person is someone other than the admin: an identity file made with
// skiff identity new, and a kubeconfig made from it.
type person struct {
	name       string
	file       string // the identity file
	publicKey  string // standard base64, as skiff identity new prints it
	user       string // skiff:key:…
	kubeconfig string
}

// newPerson makes name's identity and kubeconfig for s, trusting the
// server's certificate through serverTrust (--ca-hash HEX or
// --certificate-authority FILE).
func newPerson(t *testing.T, s *server, name string, serverTrust ...string) *person {
	t.Helper()
	dir := t.TempDir()
	p := &person{name: name, file: filepath.Join(dir, name), kubeconfig: filepath.Join(dir, name+".kubeconfig")}
	out, err := skiffCmd("identity", "new", "--name", name, "--file", p.file)
	if err != nil {
		t.Fatalf("skiff identity new: %v\n%s", err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "public-key: "); ok {
			p.publicKey = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "user: "); ok {
			p.user = strings.TrimSpace(v)
		}
	}
	if p.publicKey == "" || !strings.HasPrefix(p.user, "skiff:key:") {
		t.Fatalf("skiff identity new printed no public key and user:\n%s", out)
	}
	args := append([]string{"kubeconfig", "--identity", p.file, "--server", s.url, "-o", p.kubeconfig}, serverTrust...)
	if out, err := skiffCmd(args...); err != nil {
		t.Fatalf("skiff %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return p
}

// servingCertHash is the SHA-256 of the server's certificate, hex: what
// --ca-hash takes and the join token's middle field holds.
func servingCertHash(t *testing.T, s *server) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(s.dataDir, "serving.crt"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatal("serving.crt holds no PEM block")
	}
	sum := sha256.Sum256(block.Bytes)
	return hex.EncodeToString(sum[:])
}

// trust runs skiff trust add as the admin.
func (s *server) trust(t *testing.T, p *person, role string) {
	t.Helper()
	out, err := skiffCmd("trust", "add", p.publicKey, "--role", role, "--kubeconfig", s.kubeconfig)
	if err != nil {
		t.Fatalf("skiff trust add %s --role %s: %v\n%s", p.name, role, err, out)
	}
}

// canI is `kubectl auth can-i ARGS` as p: true for yes, false for no.
func (s *server) canI(t *testing.T, p *person, args ...string) bool {
	t.Helper()
	r := s.run(p.kubeconfig, append([]string{"auth", "can-i"}, args...)...)
	switch answer := strings.TrimSpace(r.Stdout); {
	case r.ExitCode == 0 && answer == "yes":
		return true
	case r.ExitCode == 1 && strings.HasPrefix(answer, "no"):
		return false
	}
	t.Fatalf("kubectl auth can-i %s as %s: exit %d\n%s", strings.Join(args, " "), p.name, r.ExitCode, r.Combined())
	return false
}

// TestTrustTour is the tour of trusting other people: each makes an
// identity and a kubeconfig, the admin trusts their keys as roles, and
// kubectl and skiff api then act with exactly those roles.
func TestTrustTour(t *testing.T) {
	s := startServer(t, t.TempDir(), "127.0.0.1:0")
	s.mustKubectl(t, "apply", "-f", writeFile(t, "web.yaml", workloadYAML("web", "default", "web")))

	alice := newPerson(t, s, "alice", "--ca-hash", servingCertHash(t, s))
	t.Run("an untrusted key is unauthorized", func(t *testing.T) {
		mustFail(t, "alice's get workloads before trust", s.run(alice.kubeconfig, "get", "workloads"), "Unauthorized")
	})

	s.trust(t, alice, "viewer")
	// The server's mirrors see the binding within milliseconds.
	waitFor(t, 10*time.Second, func() (bool, error) {
		return s.run(alice.kubeconfig, "get", "workloads").ExitCode == 0, nil
	})
	t.Run("a viewer reads and writes nothing", func(t *testing.T) {
		if !s.canI(t, alice, "list", "workloads") {
			t.Error("alice may not list workloads")
		}
		if s.canI(t, alice, "create", "workloads") {
			t.Error("alice may create workloads")
		}
		if s.canI(t, alice, "get", "secrets") {
			t.Error("alice may get secrets")
		}
		r := s.run(alice.kubeconfig, "get", "workloads", "-o", "name")
		if r.ExitCode != 0 || !strings.Contains(r.Stdout, "workload.skiff.dev/web") {
			t.Errorf("alice's get workloads: exit %d\n%s", r.ExitCode, r.Combined())
		}
		mustFail(t, "alice's create configmap", s.run(alice.kubeconfig, "create", "configmap", "x", "--from-literal=a=b"), "forbidden")
	})
	t.Run("trust list shows alice's key as a viewer", func(t *testing.T) {
		out, err := skiffCmd("trust", "list", "--kubeconfig", s.kubeconfig)
		if err != nil {
			t.Fatalf("skiff trust list: %v\n%s", err, out)
		}
		mustContain(t, "skiff trust list", out, strings.TrimPrefix(alice.user, "skiff:key:"), "skiff:viewer")
	})

	bob := newPerson(t, s, "bob", "--certificate-authority", filepath.Join(s.dataDir, "serving.crt"))
	s.trust(t, bob, "operator")
	waitFor(t, 10*time.Second, func() (bool, error) {
		return s.run(bob.kubeconfig, "get", "workloads").ExitCode == 0, nil
	})
	t.Run("an operator runs workloads and keeps secrets, and grants nothing", func(t *testing.T) {
		if !s.canI(t, bob, "create", "workloads") {
			t.Error("bob may not create workloads")
		}
		if r := s.run(bob.kubeconfig, "create", "secret", "generic", "db", "--from-literal=password=s3cret"); r.ExitCode != 0 {
			t.Fatalf("bob's create secret: exit %d\n%s", r.ExitCode, r.Combined())
		}
		r := s.run(bob.kubeconfig, "get", "secret", "db", "-o", "jsonpath={.data.password}")
		password, err := base64.StdEncoding.DecodeString(strings.TrimSpace(r.Stdout))
		if r.ExitCode != 0 || err != nil || string(password) != "s3cret" {
			t.Fatalf("bob's get secret: exit %d, %q (%v)\n%s", r.ExitCode, password, err, r.Stderr)
		}
		mustFail(t, "bob grants himself skiff:admin",
			s.run(bob.kubeconfig, "create", "clusterrolebinding", "bob-admin", "--clusterrole=skiff:admin", "--user="+bob.user), "forbidden")
		mustFail(t, "alice reads bob's secret", s.run(alice.kubeconfig, "get", "secret", "db"), "forbidden")
	})

	t.Run("skiff api signs a request with alice's identity", func(t *testing.T) {
		out, err := skiffCmd("api", "GET", "/apis/skiff.dev/v1alpha1/namespaces/default/workloads", "--identity", alice.file, "--kubeconfig", alice.kubeconfig)
		if err != nil {
			t.Fatalf("skiff api: %v\n%s", err, out)
		}
		var list struct {
			Kind  string `json:"kind"`
			Items []struct {
				Metadata struct{ Name string } `json:"metadata"`
			} `json:"items"`
		}
		if err := json.Unmarshal([]byte(out), &list); err != nil || list.Kind != "WorkloadList" || len(list.Items) != 1 || list.Items[0].Metadata.Name != "web" {
			t.Fatalf("skiff api printed no list of the workload web (%v):\n%s", err, out)
		}
	})
}
