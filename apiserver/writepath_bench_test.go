package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/internal/writes"
)

// BenchmarkInstanceWrites makes the writes an Instance costs on its way
// to Running, as the burst of the controllers benchmark makes them,
// through the whole server (filters, handlers, admission, managed fields,
// storage, the embedded etcd) with the in-process client of skiff's own
// controllers, eight Instances at a time: the Workload controller's
// create, the scheduler's bind and the agent's status write (with a read
// between, where the agent would have its watch's copy). The create and
// the status write take back the whole Instance (controller-runtime's
// client) or its metadata only (writes.MetadataReplies, as the Workload
// controller and the agents write). cpu-µs/op is the whole process's CPU
// per Instance.
func BenchmarkInstanceWrites(b *testing.B) {
	ts := startTestServer(b, b.TempDir())
	whole, cfg, hc := inProcessAdmin(b, ts)
	runs := 0
	for _, c := range []struct {
		name   string
		client client.Client
	}{
		{"whole-replies", whole},
		{"metadata-replies", writes.MetadataReplies(whole, cfg, hc)},
	} {
		b.Run(c.name, func(b *testing.B) {
			runs++
			instanceWrites(b, c.client, fmt.Sprintf("bench-%d-", runs))
		})
	}
}

// BenchmarkInstanceWritesWatchedByNodes is BenchmarkInstanceWrites with
// metadata replies while 1,000 node agents watch their own Instances
// (spec.nodeName=NODE), as the agents of a 1,000-node cluster do. The
// Instances are bound to one of those nodes; the watch cache sends their
// events to that node's watch only (Kind.IndexField), where without the
// index each event went to all 1,000 watches, each to look at and drop.
func BenchmarkInstanceWritesWatchedByNodes(b *testing.B) {
	ts := startTestServer(b, b.TempDir())
	c, cfg, hc := inProcessAdmin(b, ts)
	ctx, cancel := context.WithCancel(context.Background())
	var readers sync.WaitGroup
	defer readers.Wait()
	defer cancel()
	for n := range 1000 {
		w, err := c.Watch(ctx, &skiffv1alpha1.InstanceList{}, client.InNamespace("default"),
			client.MatchingFields{"spec.nodeName": fmt.Sprintf("node-%d", n)})
		if err != nil {
			b.Fatal(err)
		}
		readers.Go(func() {
			defer w.Stop()
			for {
				select {
				case <-w.ResultChan():
				case <-ctx.Done():
					return
				}
			}
		})
	}
	instanceWrites(b, writes.MetadataReplies(c, cfg, hc), "bench-")
}

// inProcessAdmin is the admin's in-process client, as the controllers
// have it: no client-side rate limit.
func inProcessAdmin(b *testing.B, ts *testServer) (client.WithWatch, *rest.Config, *http.Client) {
	cfg := ts.srv.InProcessAdminConfig()
	cfg.QPS, cfg.Burst = -1, 0
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		b.Fatal(err)
	}
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: ts.scheme, HTTPClient: hc})
	if err != nil {
		b.Fatal(err)
	}
	return c, cfg, hc
}

func instanceWrites(b *testing.B, c client.Client, prefix string) {
	template := runningInstance()
	template.ObjectMeta = metav1.ObjectMeta{
		Namespace: "default", Labels: template.Labels, OwnerReferences: template.OwnerReferences,
	}
	template.Spec.NodeName = ""
	running := template.Status
	template.Status = skiffv1alpha1.InstanceStatus{}
	instance := func(ctx context.Context, name string) error {
		inst := template.DeepCopy()
		inst.Name = name
		if err := c.Create(ctx, inst); err != nil {
			return fmt.Errorf("create: %w", err)
		}
		if err := c.SubResource("binding").Create(ctx, inst, &skiffv1alpha1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: inst.Name, UID: inst.UID}, NodeName: "node-17",
		}); err != nil {
			return fmt.Errorf("bind: %w", err)
		}
		if err := c.Get(ctx, client.ObjectKeyFromObject(inst), inst); err != nil {
			return fmt.Errorf("get: %w", err)
		}
		inst.Status.Phase, inst.Status.HostIP, inst.Status.InstanceIP = running.Phase, running.HostIP, running.InstanceIP
		inst.Status.QOSClass, inst.Status.ContainerStatuses = running.QOSClass, running.ContainerStatuses
		if err := c.Status().Update(ctx, inst); err != nil {
			return fmt.Errorf("status: %w", err)
		}
		return nil
	}
	eightAtATime(b, prefix, instance)
}

// eightAtATime calls do b.N times with names prefix1, prefix2, ..., eight
// calls at a time as the controllers' workers make them, and reports the
// whole process's CPU per call.
func eightAtATime(b *testing.B, prefix string, do func(ctx context.Context, name string) error) {
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
				if err := do(ctx, fmt.Sprintf("%s%d", prefix, i)); err != nil {
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
