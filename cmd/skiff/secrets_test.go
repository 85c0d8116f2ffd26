package main

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// TestSecretsRotateKey: rotate-key reports the new key, every Secret
// rewritten (those made here and the ones the server made), and the key it
// retired, which the next rotation names.
func TestSecretsRotateKey(t *testing.T) {
	srv, kubeconfig := startServer(t)
	ctx := context.Background()
	cs := kubernetes.NewForConfigOrDie(srv.Admin)
	// The server keeps Secrets of its own (the first-start join token's record).
	existing, err := cs.CoreV1().Secrets(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const created = 3
	for i := range created {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("s%d", i)}, StringData: map[string]string{"password": "hunter2"}}
		if _, err := cs.CoreV1().Secrets("default").Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	rotate := func() map[string]string {
		t.Helper()
		stdout, stderr, err := runSkiff(t, "", "secrets", "rotate-key", "--kubeconfig", kubeconfig)
		if err != nil {
			t.Fatalf("rotate-key: %v (stderr %q)", err, stderr)
		}
		return keyValues(t, stdout)
	}
	first := rotate()
	if n, err := strconv.Atoi(first["rewritten"]); err != nil || n != len(existing.Items)+created {
		t.Errorf("rewritten %q; want the %d Secrets made here and the server's %d", first["rewritten"], created, len(existing.Items))
	}
	if first["key"] == "" || first["retired"] == "" || first["retired"] == first["key"] {
		t.Errorf("first rotation %v; want a new key and the first-start key retired", first)
	}
	if second := rotate(); second["retired"] != first["key"] || second["key"] == first["key"] {
		t.Errorf("second rotation %v; want %s retired", second, first["key"])
	}
}
