package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestVolumes runs an Instance on runc with every kind of volume but
// hostPath and looks from inside its containers: an emptyDir shared by two
// containers (one through a subPath) and kept over a container's restart,
// a memory emptyDir on a tmpfs, a configMap volume and a secret volume on
// a tmpfs, both read-only, each updated in the container after
// `kubectl apply` changes its object, and fsGroup owning them. Then what
// waits or ends: a configMap that does not exist yet, a hostPath on an
// agent without --allow-host-paths, a memory emptyDir over its sizeLimit
// (evicted). Deleting the Instance removes its volumes from the node.
func TestVolumes(t *testing.T) {
	s, _ := startLocalNode(t, "10.250.11.1/24")
	objects := func(mode, password string) string {
		return fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {mode: %s, greeting: hello}
---
apiVersion: v1
kind: Secret
metadata: {name: password}
stringData: {password: %s}
`, mode, password)
	}
	s.mustKubectl(t, "apply", "-f", writeFile(t, "objects.yaml", objects("blue", "s3cret")))
	s.mustKubectl(t, "apply", "-f", writeFile(t, "vols.yaml", `apiVersion: skiff.dev/v1alpha1
kind: Instance
metadata: {name: vols}
spec:
  terminationGracePeriodSeconds: 2
  securityContext: {fsGroup: 3000}
  volumes:
  - name: scratch
    emptyDir: {}
  - name: mem
    emptyDir: {medium: Memory}
  - name: settings
    configMap:
      name: settings
      items: [{key: mode, path: conf/mode, mode: 0400}]
  - name: password
    secret: {secretName: password}
  containers:
  - name: writer
    image: skiff.local/busybox:latest
    volumeMounts:
    - {name: scratch, mountPath: /scratch}
    - {name: mem, mountPath: /mem}
    command: [sh, -c, 'echo start >> /scratch/starts; mkdir -p /scratch/sub; echo shared > /scratch/sub/file; echo done; trap "exit 0" TERM; while [ ! -f /mem/crash ]; do sleep 0.2; done; rm /mem/crash; exit 3']
  - name: reader
    image: skiff.local/busybox:latest
    securityContext: {runAsUser: 1000}
    volumeMounts:
    - {name: scratch, mountPath: /shared, subPath: sub}
    - {name: settings, mountPath: /etc/app}
    - {name: password, mountPath: /etc/secret}
    - {name: mem, mountPath: /mem}
    command: [sh, -c, 'echo done; trap "exit 0" TERM; sleep 3600 & wait']
`))
	s.waitPhase(t, "vols", "Running")
	containerLog(t, s, "vols", "writer")
	in := func(c string, script string) string {
		t.Helper()
		r := skiffExec(t, s.kubeconfig, "", "vols", "-c", c, "--", "sh", "-c", script)
		if r.code != 0 {
			t.Fatalf("exec in %s: %q: exit %d, stderr %q", c, script, r.code, r.stderr)
		}
		return strings.TrimSpace(r.stdout)
	}
	if got := in("reader", "cat /shared/file"); got != "shared" {
		t.Errorf("reader's /shared/file: %q, want what the writer wrote to the emptyDir's sub/", got)
	}
	if got := in("reader", "cat /etc/app/conf/mode; echo; cat /etc/secret/password"); got != "blue\ns3cret" {
		t.Errorf("configMap and secret files: %q", got)
	}
	// fsGroup: the reader (uid 1000) is in group 3000, which owns the
	// volumes; the 0400 item is group-readable, so it can read it.
	if got := in("reader", "id -G"); !strings.Contains(" "+got+" ", " 3000 ") {
		t.Errorf("reader's groups %q, want the fsGroup 3000", got)
	}
	if got := in("reader", "stat -c %g /mem; echo x > /mem/by-reader && stat -c %g /mem/by-reader"); got != "3000\n3000" {
		t.Errorf("memory emptyDir group and a new file's: %q, want 3000 (fsGroup, setgid)", got)
	}
	if got := in("reader", "stat -L -c %a /etc/app/conf/mode"); got != "440" {
		t.Errorf("item mode 0400 with fsGroup: %q, want 440", got)
	}
	mounts := in("reader", "cat /proc/mounts")
	for _, want := range []string{"tmpfs /mem tmpfs rw", "tmpfs /etc/secret tmpfs ro", " /etc/app ", " /shared "} {
		if !strings.Contains(mounts, want) {
			t.Errorf("reader's mounts lack %q:\n%s", want, mounts)
		}
	}
	if r := skiffExec(t, s.kubeconfig, "", "vols", "-c", "reader", "--", "sh", "-c", "echo x > /etc/app/new"); r.code == 0 || !strings.Contains(r.stderr, "Read-only file system") {
		t.Errorf("writing into the configMap volume: exit %d, %q; want refused, read-only", r.code, r.stderr)
	}

	// Kept over a restart: the writer exits when the reader asks it to
	// (through the memory emptyDir they share) and starts again
	// (restartPolicy Always), appending to the same file.
	in("reader", "echo > /mem/crash")
	waitFor(t, 60*time.Second, func() (bool, error) {
		r := skiffExec(t, s.kubeconfig, "", "vols", "-c", "writer", "--", "cat", "/scratch/starts")
		return r.code == 0 && r.stdout == "start\nstart\n", nil
	})

	// Updates reach the files (the kubelet's "within a minute").
	s.mustKubectl(t, "apply", "-f", writeFile(t, "objects2.yaml", objects("green", "n3w")))
	waitFor(t, 90*time.Second, func() (bool, error) {
		r := skiffExec(t, s.kubeconfig, "", "vols", "-c", "reader", "--", "sh", "-c", "cat /etc/app/conf/mode; echo; cat /etc/secret/password")
		return r.stdout == "green\nn3w", nil
	})

	uid := s.mustKubectl(t, "get", "instance", "vols", "-o", "jsonpath={.metadata.uid}")
	volumes := filepath.Join(s.dataDir, "agent", "volumes", uid)
	if _, err := os.Stat(filepath.Join(volumes, "scratch", "starts")); err != nil {
		t.Errorf("the emptyDir on the node: %v", err)
	}
	if secret, err := os.ReadFile("/proc/self/mountinfo"); err == nil && !strings.Contains(string(secret), filepath.Join(volumes, "password")+" ") {
		t.Errorf("the secret volume %s is not a mount on the node", filepath.Join(volumes, "password"))
	}
	s.mustKubectl(t, "delete", "instance", "vols", "--timeout=60s")
	if _, err := os.Stat(volumes); !os.IsNotExist(err) {
		t.Errorf("volumes of the deleted Instance: %v, want gone", err)
	}
	if info, err := os.ReadFile("/proc/self/mountinfo"); err == nil && strings.Contains(string(info), volumes) {
		t.Errorf("a volume of the deleted Instance is still mounted:\n%s", info)
	}

	// Waiting: a missing ConfigMap (until it exists) and a hostPath.
	s.mustKubectl(t, "apply", "-f", writeFile(t, "waiting.yaml", `apiVersion: skiff.dev/v1alpha1
kind: Instance
metadata: {name: late}
spec:
  terminationGracePeriodSeconds: 2
  volumes:
  - {name: cfg, configMap: {name: late}}
  containers:
  - name: main
    image: skiff.local/busybox:latest
    volumeMounts: [{name: cfg, mountPath: /cfg}]
    command: [sh, -c, 'cat /cfg/key; echo; echo done; trap "exit 0" TERM; sleep 3600 & wait']
---
apiVersion: skiff.dev/v1alpha1
kind: Instance
metadata: {name: host}
spec:
  volumes:
  - {name: h, hostPath: {path: /etc, type: Directory}}
  containers:
  - name: main
    image: skiff.local/busybox:latest
    volumeMounts: [{name: h, mountPath: /host}]
    command: [sh, -c, 'echo should not run']
`))
	for name, msg := range map[string]string{
		"late": `MountVolume.SetUp failed for volume "cfg": configmap "late" not found`,
		"host": `MountVolume.SetUp failed for volume "h": hostPath volumes are not allowed on this node (agent --allow-host-paths)`,
	} {
		waitFor(t, 60*time.Second, func() (bool, error) {
			reason, got := s.waiting(name)
			return reason == "ContainerCreating" && got == msg, nil
		})
		if events := s.warningEvents(t, name, "FailedMount"); len(events) != 1 || events[0] != msg {
			t.Errorf("%s: FailedMount Events %q, want one saying %q", name, events, msg)
		}
	}
	s.mustKubectl(t, "create", "configmap", "late", "--from-literal=key=arrived")
	s.waitPhase(t, "late", "Running")
	if got := containerLog(t, s, "late", "main"); got != "arrived\n" {
		t.Errorf("late: %q, want the ConfigMap's key once it exists", got)
	}
	s.mustKubectl(t, "delete", "instance", "late", "host", "--timeout=60s")

	// A memory emptyDir over its sizeLimit: evicted, its containers stopped.
	s.mustKubectl(t, "apply", "-f", writeFile(t, "hog.yaml", `apiVersion: skiff.dev/v1alpha1
kind: Instance
metadata: {name: hog}
spec:
  terminationGracePeriodSeconds: 2
  volumes:
  - name: cache
    emptyDir: {medium: Memory, sizeLimit: 1Mi}
  containers:
  - name: main
    image: skiff.local/busybox:latest
    resources: {limits: {memory: 64Mi}}
    volumeMounts: [{name: cache, mountPath: /cache}]
    command: [sh, -c, 'dd if=/dev/zero of=/cache/fill bs=1M count=4; echo done; trap "exit 0" TERM; sleep 3600 & wait']
`))
	const evicted = `Usage of EmptyDir volume "cache" exceeds the limit "1Mi".`
	waitFor(t, 60*time.Second, func() (bool, error) {
		out, err := s.kubectl("get", "instance", "hog", "-o", `jsonpath={.status.phase}|{.status.reason}|{.status.message}`)
		return err == nil && out == "Failed|Evicted|"+evicted, nil
	})
	// Its containers are stopped: then its volumes go (detached only once
	// the containers are gone), and nothing runs to exec into.
	hog := filepath.Join(s.dataDir, "agent", "volumes", s.mustKubectl(t, "get", "instance", "hog", "-o", "jsonpath={.metadata.uid}"))
	waitFor(t, 60*time.Second, func() (bool, error) {
		_, err := os.Stat(hog)
		return os.IsNotExist(err), nil
	})
	if r := skiffExec(t, s.kubeconfig, "", "hog", "--", "true"); r.code == 0 {
		t.Errorf("exec into the evicted Instance succeeded, want its container stopped")
	}
	if events := s.warningEvents(t, "hog", "Evicted"); len(events) != 1 || events[0] != evicted {
		t.Errorf("Evicted Events %q, want one saying %q", events, evicted)
	}
	s.mustKubectl(t, "delete", "instance", "hog", "--timeout=60s")
}

// TestHostPathVolumes: on an agent started with --agent-allow-host-paths
// a hostPath volume of each type shows the node's files, a container's
// write reaches the node, the OrCreate types make what is missing, a
// type that does not match waits saying so, and deleting the Instance
// leaves the node's files alone.
func TestHostPathVolumes(t *testing.T) {
	s, _ := startLocalNode(t, "10.250.12.1/24", "--agent-allow-host-paths")
	node := t.TempDir()
	if err := os.WriteFile(filepath.Join(node, "existing"), []byte("from the node\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.mustKubectl(t, "apply", "-f", writeFile(t, "host.yaml", fmt.Sprintf(`apiVersion: skiff.dev/v1alpha1
kind: Instance
metadata: {name: host}
spec:
  terminationGracePeriodSeconds: 2
  volumes:
  - {name: dir, hostPath: {path: %[1]s, type: Directory}}
  - {name: file, hostPath: {path: %[1]s/existing, type: File}}
  - {name: newdir, hostPath: {path: %[1]s/made/dir, type: DirectoryOrCreate}}
  - {name: newfile, hostPath: {path: %[1]s/made/file, type: FileOrCreate}}
  containers:
  - name: main
    image: skiff.local/busybox:latest
    volumeMounts:
    - {name: dir, mountPath: /node}
    - {name: file, mountPath: /existing, readOnly: true}
    - {name: newdir, mountPath: /newdir}
    - {name: newfile, mountPath: /newfile}
    command: [sh, -c, 'cat /existing; echo written > /node/by-container; echo in > /newdir/x; echo f > /newfile; (echo no > /existing) 2>&1 | grep -o "Read-only file system"; echo done; trap "exit 0" TERM; sleep 3600 & wait']
---
apiVersion: skiff.dev/v1alpha1
kind: Instance
metadata: {name: wrongtype}
spec:
  volumes:
  - {name: f, hostPath: {path: %[1]s/existing, type: Directory}}
  containers:
  - name: main
    image: skiff.local/busybox:latest
    volumeMounts: [{name: f, mountPath: /f}]
    command: [sh, -c, 'echo should not run']
`, node)))
	s.waitPhase(t, "host", "Running")
	if got := containerLog(t, s, "host", "main"); got != "from the node\nRead-only file system\n" {
		t.Errorf("host: %q, want the node's file, read-only", got)
	}
	for file, want := range map[string]string{"by-container": "written\n", "made/dir/x": "in\n", "made/file": "f\n"} {
		if got, err := os.ReadFile(filepath.Join(node, file)); err != nil || string(got) != want {
			t.Errorf("node's %s: %q %v, want %q", file, got, err, want)
		}
	}
	msg := fmt.Sprintf(`MountVolume.SetUp failed for volume "f": hostPath type check failed: %s/existing is not a directory`, node)
	waitFor(t, 60*time.Second, func() (bool, error) {
		reason, got := s.waiting("wrongtype")
		return reason == "ContainerCreating" && got == msg, nil
	})
	s.mustKubectl(t, "delete", "instance", "host", "wrongtype", "--timeout=60s")
	if _, err := os.Stat(filepath.Join(node, "by-container")); err != nil {
		t.Errorf("the node's files after the Instance is deleted: %v", err)
	}
}
