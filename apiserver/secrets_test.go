package apiserver

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// rawEtcd reads keys straight from the test server's embedded etcd.
func rawEtcd(t *testing.T, dataDir string) func(key string) []byte {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{"unix://" + filepath.Join(dataDir, "etcd", "client.sock")},
		DialTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return func(key string) []byte {
		resp, err := c.Get(context.Background(), key)
		if err != nil {
			t.Fatalf("etcd get %s: %v", key, err)
		}
		if len(resp.Kvs) != 1 {
			t.Fatalf("etcd get %s: %d keys", key, len(resp.Kvs))
		}
		return resp.Kvs[0].Value
	}
}

func TestSecretsAreEncryptedAtRest(t *testing.T) {
	dir := t.TempDir()
	ts := startTestServer(t, dir)
	cs := kubernetes.NewForConfigOrDie(ts.cfg)
	ctx := context.Background()
	raw := rawEtcd(t, dir)

	const password = "correct-horse-battery-staple"
	var names []string
	for i := range 12 {
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("db-%d", i)},
			StringData: map[string]string{"password": fmt.Sprintf("%s-%d", password, i)},
		}
		if _, err := cs.CoreV1().Secrets("default").Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create secret: %v", err)
		}
		names = append(names, s.Name)
	}
	info, err := os.Stat(filepath.Join(dir, EncryptionConfigFile))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("encryption configuration: %v, mode %v; want 0600", err, info.Mode())
	}
	keyName := func() string {
		keys, err := readEncryptionKeys(filepath.Join(dir, EncryptionConfigFile))
		if err != nil || len(keys) != 1 {
			t.Fatalf("encryption keys: %v (%d keys)", err, len(keys))
		}
		return keys[0].Name
	}
	assertEncrypted := func(key string) {
		t.Helper()
		for _, n := range names {
			v := raw("/registry/secrets/default/" + n)
			if want := "k8s:enc:secretbox:v1:" + key + ":"; !bytes.HasPrefix(v, []byte(want)) {
				t.Errorf("etcd value of %s starts %q; want %q", n, v[:min(len(v), 40)], want)
			}
			if bytes.Contains(v, []byte(password)) || bytes.Contains(v, []byte("password")) {
				t.Errorf("etcd value of %s holds the secret in clear", n)
			}
		}
	}
	assertReadable := func() {
		t.Helper()
		for i, n := range names {
			s, err := cs.CoreV1().Secrets("default").Get(ctx, n, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("get %s: %v", n, err)
			}
			if got, want := string(s.Data["password"]), fmt.Sprintf("%s-%d", password, i); got != want || s.StringData != nil {
				t.Errorf("%s: data %q stringData %v; want %q and no stringData", n, got, s.StringData, want)
			}
		}
	}
	first := keyName()
	assertEncrypted(first)
	assertReadable()
	// The audit log records who wrote and read them, not what they hold.
	deadline := time.Now().Add(30 * time.Second)
	for {
		audit, _ := os.ReadFile(filepath.Join(dir, auditLogFile))
		if bytes.Count(audit, []byte(`"resource":"secrets"`)) >= 2*len(names) {
			// Values travel base64-encoded: 27 bytes are 9 whole groups,
			// a prefix of every value's encoding.
			if bytes.Contains(audit, []byte(password)) || bytes.Contains(audit, []byte(base64.StdEncoding.EncodeToString([]byte(password[:27])))) {
				t.Errorf("the audit log holds a secret value")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the audit log has not recorded the secrets' creates and reads after 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// ConfigMaps are not secret: stored as they are.
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings"}, Data: map[string]string{"mode": "fast"}}
	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create configmap: %v", err)
	}
	if v := raw("/registry/configmaps/default/settings"); !bytes.Contains(v, []byte("fast")) {
		t.Errorf("configmap is not stored as JSON: %q", v)
	}

	t.Run("rotate-key rewrites every Secret with a new key and retires the old", func(t *testing.T) {
		body, err := cs.CoreV1().RESTClient().Post().AbsPath(RotateKeyPath).DoRaw(ctx)
		if err != nil {
			t.Fatalf("rotate: %v: %s", err, body)
		}
		var rot Rotation
		if err := json.Unmarshal(body, &rot); err != nil {
			t.Fatalf("rotation report %q: %v", body, err)
		}
		all, err := cs.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if rot.Rewritten != len(all.Items) || len(rot.Retired) != 1 || rot.Retired[0] != first || rot.Key == first {
			t.Fatalf("rotation %+v; want %d rewritten (every Secret), %s retired", rot, len(all.Items), first)
		}
		if got := keyName(); got != rot.Key {
			t.Fatalf("configuration holds key %s; want only %s", got, rot.Key)
		}
		assertEncrypted(rot.Key)
		assertReadable()
	})

	t.Run("a rotation while Secrets are written leaves none under a retired key", func(t *testing.T) {
		stop, done := make(chan struct{}), make(chan int)
		go func() {
			n := 0
			for {
				select {
				case <-stop:
					done <- n
					return
				default:
				}
				s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("busy-%d", n)}, StringData: map[string]string{"k": password}}
				if _, err := cs.CoreV1().Secrets("default").Create(ctx, s, metav1.CreateOptions{}); err == nil {
					n++
				}
			}
		}()
		var rot Rotation
		for range 3 {
			body, err := cs.CoreV1().RESTClient().Post().AbsPath(RotateKeyPath).DoRaw(ctx)
			if err != nil {
				t.Fatalf("rotate: %v: %s", err, body)
			}
			if err := json.Unmarshal(body, &rot); err != nil {
				t.Fatal(err)
			}
		}
		close(stop)
		if n := <-done; n == 0 {
			t.Fatal("no Secret was written during the rotations")
		}
		all, err := cs.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatalf("list after rotating under writes: %v", err)
		}
		for _, sec := range all.Items {
			v := raw("/registry/secrets/" + sec.Namespace + "/" + sec.Name)
			if !bytes.HasPrefix(v, []byte("k8s:enc:secretbox:v1:"+rot.Key+":")) {
				t.Errorf("%s/%s is not under the current key %s: %q", sec.Namespace, sec.Name, rot.Key, v[:min(len(v), 50)])
			}
		}
	})
}

func TestSecretAndConfigMapValidation(t *testing.T) {
	ts := startTestServer(t, t.TempDir())
	cs := kubernetes.NewForConfigOrDie(ts.cfg)
	ctx := context.Background()
	secrets := cs.CoreV1().Secrets("default")

	for _, tc := range []struct {
		name   string
		secret corev1.Secret
		field  string
	}{
		{"a key with a slash", corev1.Secret{Data: map[string][]byte{"a/b": nil}}, "data[a/b]"},
		{"docker config without its key", corev1.Secret{Type: corev1.SecretTypeDockerConfigJson}, "data[.dockerconfigjson]"},
		{"docker config that is not JSON", corev1.Secret{Type: corev1.SecretTypeDockerConfigJson, StringData: map[string]string{".dockerconfigjson": "hunter2{"}}, "data[.dockerconfigjson]"},
		{"tls without its key", corev1.Secret{Type: corev1.SecretTypeTLS, StringData: map[string]string{"tls.crt": "x"}}, "data[tls.key]"},
		{"basic-auth with neither", corev1.Secret{Type: corev1.SecretTypeBasicAuth}, "data[username]"},
		{"too big", corev1.Secret{Data: map[string][]byte{"a": make([]byte, maxDataSize+1)}}, "data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.secret
			s.Name = "bad"
			_, err := secrets.Create(ctx, &s, metav1.CreateOptions{})
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("create: %v; want invalid naming %s", err, tc.field)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error quotes the secret: %v", err)
			}
		})
	}

	t.Run("type and immutable data do not change", func(t *testing.T) {
		s, err := secrets.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "frozen"}, Immutable: ptr.To(true),
			Data: map[string][]byte{"k": []byte("v")},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		if s.Type != corev1.SecretTypeOpaque {
			t.Errorf("type %q; want Opaque by default", s.Type)
		}
		s.Data["k"] = []byte("w")
		if _, err := secrets.Update(ctx, s, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "data") {
			t.Errorf("update of immutable data: %v; want invalid", err)
		}
		s.Data["k"] = []byte("v")
		s.Type = corev1.SecretTypeBasicAuth
		if _, err := secrets.Update(ctx, s, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "type") {
			t.Errorf("update of type: %v; want invalid", err)
		}
	})

	t.Run("a configmap key in data and binaryData", func(t *testing.T) {
		_, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "dup"},
			Data:       map[string]string{"k": "v"}, BinaryData: map[string][]byte{"k": []byte("v")},
		}, metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "binaryData[k]") {
			t.Fatalf("create: %v; want invalid naming binaryData[k]", err)
		}
	})

	t.Run("a namespace holding a secret is not deleted", func(t *testing.T) {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().Secrets("team").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		err := cs.CoreV1().Namespaces().Delete(ctx, "team", metav1.DeleteOptions{})
		if !apierrors.IsConflict(err) || !strings.Contains(err.Error(), "1 secrets") {
			t.Fatalf("delete: %v; want a conflict naming 1 secrets", err)
		}
	})
}
