package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/remotecommand"
)

// execBench times n execs, one after another, into the running Instance
// instance: `true` and `echo x` through the API server's exec subresource
// as kubectl and skiff exec stream it (SPDY, client-go, from this
// process), and `true` with the skiff exec command, a process per exec
// (its start, the kubeconfig and the TLS handshake included).
func execBench(bin, kubeconfig, instance string, n int) ([]result, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	api := func(want string, command ...string) func() error {
		q := url.Values{"command": command, "stdout": {"true"}, "stderr": {"true"}}
		u, err := url.Parse(cfg.Host + "/apis/skiff.dev/v1alpha1/namespaces/default/instances/" + instance + "/exec?" + q.Encode())
		if err != nil {
			return func() error { return err }
		}
		return func() error {
			ex, err := remotecommand.NewSPDYExecutor(cfg, http.MethodPost, u)
			if err != nil {
				return err
			}
			// Two buffers: one written from two streams' copies at once
			// loses output (bytes.Buffer.ReadFrom).
			var out, errOut bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &out, Stderr: &errOut}); err != nil {
				return err
			}
			if out.String() != want || errOut.Len() > 0 {
				return fmt.Errorf("%s printed %q and %q, want %q", strings.Join(command, " "), out.String(), errOut.String(), want)
			}
			return nil
		}
	}
	cli := func() error {
		out, err := exec.Command(bin, "exec", "--kubeconfig", kubeconfig, instance, "--", "true").CombinedOutput()
		if err != nil {
			return fmt.Errorf("skiff exec: %w: %s", err, out)
		}
		return nil
	}
	var res []result
	for _, c := range []struct {
		name string
		run  func() error
	}{
		{"exec true via API (SPDY)", api("", "true")},
		{"exec echo x via API (SPDY)", api("x\n", "echo", "x")},
		{"skiff exec -- true, the CLI", cli},
	} {
		if err := c.run(); err != nil { // a first one, untimed
			return nil, err
		}
		samples := make([]time.Duration, 0, n)
		for range n {
			t0 := time.Now()
			if err := c.run(); err != nil {
				return nil, err
			}
			samples = append(samples, time.Since(t0))
		}
		p50, p99, err := percentiles(samples)
		if err != nil {
			return nil, err
		}
		res = append(res, result{
			name:  c.name + ", p50 / p99 (min-max)",
			value: fmt.Sprintf("%.1f / %.1f ms (%.0f-%.0f)", msf(p50), msf(p99), msf(slices.Min(samples)), msf(slices.Max(samples))),
		})
	}
	return res, nil
}

func msf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
