package apiservertest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// Scheme holds every kind the apiserver serves: skiff.dev, core/v1 and
// coordination.k8s.io/v1.
func Scheme(t testing.TB) *runtime.Scheme {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{skiffv1alpha1.AddToScheme, corev1.AddToScheme, coordinationv1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	return scheme
}

// Manager returns a controller-runtime manager of s's admin, for a test:
// no metrics listener, and controller names may repeat (as under -count=N).
func (s *Server) Manager(t testing.TB, scheme *runtime.Scheme) manager.Manager {
	t.Helper()
	mgr, err := manager.New(s.Admin, manager.Options{
		Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return mgr
}

// Run runs run (a manager's Start, an agent's Run) until stop is called
// or the test ends, and fails the test if it ends with an error. stop may
// be called more than once.
func Run(t testing.TB, ctx context.Context, run func(context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("%v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// WaitReadyNodes waits until exactly n Nodes are Ready.
func WaitReadyNodes(t testing.TB, c client.Reader, n int) {
	t.Helper()
	Eventually(t, fmt.Sprintf("%d ready nodes", n), func() bool {
		var list skiffv1alpha1.NodeList
		if c.List(context.Background(), &list) != nil {
			return false
		}
		ready := 0
		for _, node := range list.Items {
			if meta.IsStatusConditionTrue(node.Status.Conditions, skiffv1alpha1.NodeConditionReady) {
				ready++
			}
		}
		return ready == n
	})
}

// Eventually waits up to a minute for cond, checking it every 20 ms, and
// fails the test naming what did not happen.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
