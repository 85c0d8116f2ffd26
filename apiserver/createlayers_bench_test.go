package apiserver

import (
	"context"
	"fmt"
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
	"skiff.dev/skiff/internal/loadgen"
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
			return loadgen.Create(ctx, hc, cfg.Host+path, name, loadgen.Workload(name))
		}
	}
	tlsCfg := restclient.CopyConfig(ts.cfg)
	tlsCfg.QPS, tlsCfg.Burst = -1, 0
	inProcess := ts.srv.InProcessAdminConfig()
	inProcess.QPS, inProcess.Burst = -1, 0

	var template skiffv1alpha1.Workload
	if err := runtime.DecodeInto(serializer.NewCodecFactory(ts.scheme).UniversalDecoder(), loadgen.Workload("template"), &template); err != nil {
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
			eightAtATime(b, fmt.Sprintf("%s-%d-", layer.name, runs), layer.create)
		})
	}
}
