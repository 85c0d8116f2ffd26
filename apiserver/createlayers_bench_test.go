package apiserver

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apiserver/pkg/authentication/user"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/registry/rest"
	restclient "k8s.io/client-go/rest"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// BenchmarkWorkloadCreateLayers makes the 1 KB Workloads of `make
// bench`'s creates/s, eight at a time, through three layers of one
// server, to say what each layer costs per create (cpu-µs/op is the whole
// process's CPU, client included):
//
//   - tls: a client over loopback TLS and HTTP/2, as the bench's;
//   - in-process: the whole handler chain (filters, authentication,
//     audit, fair queues, decoding, admission, managed fields, the reply)
//     without the connection;
//   - store: the generic store's Create alone (strategy, validation, the
//     storage encoding, the etcd transaction, the watch cache): what any
//     write path must still do.
func BenchmarkWorkloadCreateLayers(b *testing.B) {
	ts := startTestServer(b, b.TempDir())
	const path = "/apis/skiff.dev/v1alpha1/namespaces/default/workloads"
	post := func(cfg *restclient.Config) func(ctx context.Context, name string) error {
		hc, err := restclient.HTTPClientFor(cfg)
		if err != nil {
			b.Fatal(err)
		}
		return func(ctx context.Context, name string) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.Host+path, bytes.NewReader(benchWorkload(name)))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			_, _ = io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != http.StatusCreated {
				return fmt.Errorf("create %s: %s", name, resp.Status)
			}
			return nil
		}
	}
	tlsCfg := restclient.CopyConfig(ts.cfg)
	tlsCfg.QPS, tlsCfg.Burst = -1, 0
	inProcess := ts.srv.InProcessAdminConfig()
	inProcess.QPS, inProcess.Burst = -1, 0

	var template skiffv1alpha1.Workload
	if err := runtime.DecodeInto(serializer.NewCodecFactory(ts.scheme).UniversalDecoder(), benchWorkload("template"), &template); err != nil {
		b.Fatal(err)
	}
	<-ts.srv.local.ready
	store, ok := ts.srv.local.byKind[skiffv1alpha1.SchemeGroupVersion.WithKind("Workload")].(*genericregistry.Store)
	if !ok {
		b.Fatal("no generic store of Workloads")
	}
	admin := &user.DefaultInfo{Name: AdminUser, Groups: []string{user.SystemPrivilegedGroup}}
	direct := func(ctx context.Context, name string) error {
		w := template.DeepCopy()
		w.Name, w.Namespace = name, "default"
		ctx = genericapirequest.WithNamespace(genericapirequest.WithUser(ctx, admin), "default")
		_, err := store.Create(ctx, w, rest.ValidateAllObjectFunc, &metav1.CreateOptions{})
		return err
	}

	for _, layer := range []struct {
		name   string
		create func(ctx context.Context, name string) error
	}{
		{"tls", post(tlsCfg)},
		{"in-process", post(inProcess)},
		{"store", direct},
	} {
		runs := 0
		b.Run(layer.name, func(b *testing.B) {
			runs++
			createEach(b, fmt.Sprintf("%s-%d-", layer.name, runs), layer.create)
		})
	}
}

// benchWorkload is the bench's Workload of about 1 KB (test/bench).
func benchWorkload(name string) []byte {
	return []byte(fmt.Sprintf(`{"apiVersion":"skiff.dev/v1alpha1","kind":"Workload","metadata":{"name":%q,"labels":{"bench":"yes"},"annotations":{"note":%q}},"spec":{"replicas":2,"template":{"metadata":{"labels":{"app":%q}},"spec":{"containers":[{"name":"web","image":"registry.local/web:1.0","args":["--port","8080"],"ports":[{"containerPort":8080}],"resources":{"requests":{"cpu":"100m","memory":"64Mi"},"limits":{"cpu":"1","memory":"128Mi"}}}]}}}}`,
		name, strings.Repeat("x", 560), name))
}

// createEach calls create b.N times, eight at a time, and reports the
// process's CPU per create.
func createEach(b *testing.B, prefix string, create func(ctx context.Context, name string) error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var next atomic.Int64
	errs := make(chan error, 8)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
				if err := create(ctx, fmt.Sprintf("%s%d", prefix, i)); err != nil {
					errs <- err
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}
