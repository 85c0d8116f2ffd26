package serverlist

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

const testURL = "https://10.0.0.1:6443"

// fastLease is a Lease of server "a" that renews every 20ms.
func fastLease(t *testing.T, c client.Client) *Lease {
	t.Helper()
	l, err := NewLease(c, "a", testURL)
	if err != nil {
		t.Fatal(err)
	}
	l.interval, l.firstRetry = 20*time.Millisecond, 5*time.Millisecond
	return l
}

// running runs l until the test ends or stop is called; stop waits for
// Run to return and fails the test if it returned an error.
func running(t *testing.T, l *Lease) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

func getLease(c client.Client, server string) (*coordinationv1.Lease, error) {
	var l coordinationv1.Lease
	err := c.Get(context.Background(), client.ObjectKey{Namespace: Namespace, Name: LeaseName(server)}, &l)
	return &l, err
}

// waitFor polls cond every 5ms for up to 5s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestNewLeaseRefuses(t *testing.T) {
	c := fakeClient(t, interceptor.Funcs{})
	for _, tc := range []struct{ server, url, want string }{
		{"Server_1", testURL, `server name "Server_1"`},
		{"", testURL, `server name ""`},
		{"a", "http://10.0.0.1:6443", "want https://host:port"},
		{"a", "10.0.0.1:6443", `URL "10.0.0.1:6443"`},
	} {
		if _, err := NewLease(c, tc.server, tc.url); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewLease(%q, %q): %v, want an error with %q", tc.server, tc.url, err, tc.want)
		}
	}
}

func TestLeaseRenewsThenDeletesItself(t *testing.T) {
	c := fakeClient(t, interceptor.Funcs{})
	stop := running(t, fastLease(t, c))
	var first *coordinationv1.Lease
	waitFor(t, "the Lease", func() bool {
		var err error
		first, err = getLease(c, "a")
		return err == nil
	})
	s := first.Spec
	if first.Labels[skiffv1alpha1.ServerLeaseLabel] != "true" || first.Annotations[skiffv1alpha1.ServerURLAnnotation] != testURL ||
		*s.HolderIdentity != "a" || *s.LeaseDurationSeconds != 30 || s.AcquireTime == nil {
		t.Fatalf("Lease %+v", first)
	}
	waitFor(t, "a renewal", func() bool {
		l, err := getLease(c, "a")
		return err == nil && l.Spec.RenewTime.After(first.Spec.RenewTime.Time) && l.Spec.AcquireTime.Equal(first.Spec.AcquireTime)
	})
	stop()
	if _, err := getLease(c, "a"); !apierrors.IsNotFound(err) {
		t.Fatalf("after a clean stop: %v, want the Lease gone", err)
	}
}

func TestLeaseRetriesUntilTheServerServes(t *testing.T) {
	var refused atomic.Int32
	c := fakeClient(t, interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
		if refused.Add(1) <= 5 {
			return errors.New("connect: connection refused")
		}
		return c.Get(ctx, key, obj, opts...)
	}})
	running(t, fastLease(t, c))
	waitFor(t, "the Lease once the server serves", func() bool {
		_, err := getLease(c, "a")
		return err == nil
	})
}

func TestLeaseRetriesConflicts(t *testing.T) {
	var conflicts atomic.Int32
	c := fakeClient(t, interceptor.Funcs{Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
		if conflicts.Add(1) <= 2 {
			return apierrors.NewConflict(coordinationv1.Resource("leases"), obj.GetName(), errors.New("changed"))
		}
		return c.Update(ctx, obj, opts...)
	}}, serverLease("a", "https://10.0.0.9:6443", t0, 30)) // a Lease of an earlier run
	l := fastLease(t, c)
	if err := l.renew(context.Background()); err != nil {
		t.Fatalf("renew through two conflicts: %v", err)
	}
	if got, _ := getLease(c, "a"); got.Annotations[skiffv1alpha1.ServerURLAnnotation] != testURL {
		t.Fatalf("URL %q, want %q", got.Annotations[skiffv1alpha1.ServerURLAnnotation], testURL)
	}
}

func TestLeaseComesBackAfterRemove(t *testing.T) {
	c := fakeClient(t, interceptor.Funcs{})
	l := fastLease(t, c)
	ctx := context.Background()
	if err := l.renew(ctx); err != nil {
		t.Fatal(err)
	}
	if err := Remove(ctx, c, "a"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if err := Remove(ctx, c, "a"); err != nil {
		t.Fatalf("Remove of a missing Lease: %v", err)
	}
	if err := l.renew(ctx); err != nil {
		t.Fatalf("renew after Remove: %v", err)
	}
	if _, err := getLease(c, "a"); err != nil {
		t.Fatalf("after a renewal: %v", err)
	}
}

func TestReleaseEndsRenewals(t *testing.T) {
	c := fakeClient(t, interceptor.Funcs{})
	l := fastLease(t, c)
	ctx := context.Background()
	if err := l.Release(ctx); err != nil {
		t.Fatalf("Release before any renewal: %v", err)
	}
	if err := l.renew(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := getLease(c, "a"); !apierrors.IsNotFound(err) {
		t.Fatalf("a renewal after Release wrote the Lease: %v", err)
	}

	// A Lease this process never wrote is not deleted.
	c = fakeClient(t, interceptor.Funcs{}, serverLease("a", testURL, t0, 30))
	if err := fastLease(t, c).Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := getLease(c, "a"); err != nil {
		t.Fatalf("Release deleted a Lease it did not write: %v", err)
	}
}
