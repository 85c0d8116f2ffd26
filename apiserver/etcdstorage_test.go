package apiserver

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/apiserver/pkg/storage/storagebackend/factory"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// etcdRPCs counts the gRPC requests of method (Txn, Watch, ...) every etcd
// of this test process has been sent over its socket, from etcd's own
// metrics.
func etcdRPCs(t *testing.T, method string) float64 {
	t.Helper()
	return counterSum(t, prometheus.DefaultGatherer, "grpc_server_started_total", map[string]string{"grpc_method": method})
}

// writeWorkloads creates, updates and deletes n Workloads through ts.
func writeWorkloads(t *testing.T, c client.Client, n int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		w := newWorkload(fmt.Sprintf("w%d", i), 1)
		if err := c.Create(ctx, w); err != nil {
			t.Fatalf("create: %v", err)
		}
		w.Labels = map[string]string{"round": "2"}
		if err := c.Update(ctx, w); err != nil {
			t.Fatalf("update: %v", err)
		}
		if err := c.Delete(ctx, w); err != nil {
			t.Fatalf("delete: %v", err)
		}
	}
}

// A server with its own etcd writes to it and watches it by function
// call, not over the socket (yet its watch caches see every write); a
// server of an external etcd writes and watches over gRPC.
func TestStoresCallTheirOwnEtcdInProcess(t *testing.T) {
	watches := etcdRPCs(t, "Watch")
	ts := startTestServer(t, t.TempDir())
	if got := etcdRPCs(t, "Watch") - watches; got != 0 {
		t.Fatalf("the watch caches opened %v watch streams to the server's own etcd over gRPC, want none", got)
	}
	wc, err := client.NewWithWatch(ts.cfg, client.Options{Scheme: ts.scheme})
	if err != nil {
		t.Fatal(err)
	}
	events, err := wc.Watch(context.Background(), &skiffv1alpha1.WorkloadList{}, client.InNamespace("default"))
	if err != nil {
		t.Fatal(err)
	}
	defer events.Stop()
	txns := etcdRPCs(t, "Txn")
	writeWorkloads(t, ts.client, 10)
	if got := etcdRPCs(t, "Txn") - txns; got != 0 {
		t.Fatalf("30 writes to the server's own etcd sent %v Txn requests over gRPC, want none", got)
	}
	// The watch cache serves the API's watches: each of the 30 writes
	// reaches one, in order.
	want := []watch.EventType{watch.Added, watch.Modified, watch.Deleted}
	for i := range 30 {
		select {
		case ev, ok := <-events.ResultChan():
			if !ok {
				t.Fatalf("the watch ended after %d of 30 events", i)
			}
			if ev.Type != want[i%3] {
				t.Fatalf("event %d of the writes is %s %v, want %s", i, ev.Type, ev.Object, want[i%3])
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%d of 30 events of the writes seen by a watch", i)
		}
	}

	etcd, err := startEmbeddedEtcd(context.Background(), t.TempDir(), etcdOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(etcd.Close) // runs after the server's cleanup stops it
	watches = etcdRPCs(t, "Watch")
	external := startTestServer(t, t.TempDir(), func(c *Config) { c.EtcdServers = []string{etcd.Endpoint} })
	if etcdRPCs(t, "Watch") == watches {
		t.Fatal("no watch stream to the external etcd: its watch caches watch over gRPC")
	}
	txns = etcdRPCs(t, "Txn")
	writeWorkloads(t, external.client, 10)
	if got := etcdRPCs(t, "Txn") - txns; got < 30 {
		t.Fatalf("30 writes to an external etcd sent %v Txn requests over gRPC, want at least 30", got)
	}
}

// BenchmarkEtcdStoreUpdate updates one Instance's status through the
// library's etcd3 store, its requests to the embedded etcd as gRPC over
// the socket (the library's client) or in process (localEtcdStorage).
// cpu-µs/op is the whole process's CPU (store and etcd) per update.
func BenchmarkEtcdStoreUpdate(b *testing.B) {
	etcd, err := startEmbeddedEtcd(context.Background(), b.TempDir(), etcdOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer etcd.Close()
	sch, err := newSchemes()
	if err != nil {
		b.Fatal(err)
	}
	cfg := storagebackend.NewDefaultConfig("/bench", newRecallingCodec(storageCodec(sch), sch.full))
	cfg.Transport.ServerList = []string{etcd.Endpoint}
	res := cfg.ForResource(skiffv1alpha1.SchemeGroupVersion.WithResource("instances").GroupResource())
	newFunc := func() runtime.Object { return &skiffv1alpha1.Instance{} }
	newListFunc := func() runtime.Object { return &skiffv1alpha1.InstanceList{} }
	clientCfg, err := etcdClientConfig([]string{etcd.Endpoint}, DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	local, err := newLocalEtcdStorage(etcd.etcd.Server, clientCfg, true)
	if err != nil {
		b.Fatal(err)
	}
	defer local.Close()
	runs := 0
	for _, c := range []struct {
		name  string
		store func() (storage.Interface, factory.DestroyFunc, error)
	}{
		{"grpc", func() (storage.Interface, factory.DestroyFunc, error) {
			return factory.Create(*res, newFunc, newListFunc, "/instances")
		}},
		{"in-process", func() (storage.Interface, factory.DestroyFunc, error) {
			return local.raw(res, newFunc, newListFunc, "/instances")
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			s, destroy, err := c.store()
			if err != nil {
				b.Fatal(err)
			}
			defer destroy()
			ctx := context.Background()
			runs++
			key := fmt.Sprintf("/instances/default/%s-%d", c.name, runs)
			inst := runningInstance()
			inst.ResourceVersion = ""
			if err := s.Create(ctx, key, inst, &skiffv1alpha1.Instance{}, 0); err != nil {
				b.Fatal(err)
			}
			i := 0
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				i++
				err := s.GuaranteedUpdate(ctx, key, &skiffv1alpha1.Instance{}, false, nil,
					func(in runtime.Object, _ storage.ResponseMeta) (runtime.Object, *uint64, error) {
						in.(*skiffv1alpha1.Instance).Status.Message = strconv.Itoa(i)
						return in, nil, nil
					}, nil)
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(i), "cpu-µs/op")
		})
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// A server's own etcd, which has no follower to catch up, snapshots its
// raft log every ownSnapshotCount writes (then keeps ownCatchUpEntries of
// it in memory), not every 10,000 as etcd does by default: its in-memory
// log stays short through a burst of writes.
func TestOwnEtcdSnapshotsItsRaftLogOften(t *testing.T) {
	dir := t.TempDir()
	etcd, err := startEmbeddedEtcd(context.Background(), dir, etcdOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer etcd.Close()
	// A snapshot file is named TERM-INDEX.snap, in hex.
	latest := func() uint64 {
		files, _ := filepath.Glob(filepath.Join(dir, "data", "member", "snap", "*.snap"))
		var index uint64
		for _, f := range files {
			var term, i uint64
			if _, err := fmt.Sscanf(filepath.Base(f), "%016x-%016x.snap", &term, &i); err == nil {
				index = max(index, i)
			}
		}
		return index
	}
	if i := latest(); i != 0 {
		t.Fatalf("a raft snapshot at index %d before any write", i)
	}
	ctx := context.Background()
	for i := range ownSnapshotCount + ownSnapshotCount/2 {
		if _, err := etcd.client().Put(ctx, fmt.Sprintf("/k/%d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "a raft snapshot after 1,500 writes", func() bool { return latest() >= ownSnapshotCount })
}

// routeKV records which KV a request reached.
type routeKV struct {
	clientv3.KV
	name string
	got  *[]string
}

func (r routeKV) Get(context.Context, string, ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	*r.got = append(*r.got, r.name+" get")
	return &clientv3.GetResponse{}, nil
}

func (r routeKV) Do(_ context.Context, op clientv3.Op) (clientv3.OpResponse, error) {
	*r.got = append(*r.got, r.name+" do")
	return clientv3.OpResponse{}, nil
}

// Writes go in process, reads to the gRPC client (a flood of consistent
// lists read in process starved the readiness check).
func TestWritingKVSendsOnlyWritesInProcess(t *testing.T) {
	var got []string
	kv := writingKV{KV: routeKV{name: "local", got: &got}, reads: routeKV{name: "grpc", got: &got}}
	ctx := context.Background()
	_, _ = kv.Get(ctx, "k")
	_, _ = kv.Do(ctx, clientv3.OpGet("k"))
	_, _ = kv.Do(ctx, clientv3.OpPut("k", "v"))
	_, _ = kv.Do(ctx, clientv3.OpDelete("k"))
	want := []string{"grpc get", "grpc do", "local do", "local do"}
	if !slices.Equal(got, want) {
		t.Fatalf("routed %v, want %v", got, want)
	}
}
