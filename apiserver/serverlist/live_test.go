package serverlist

import (
	"context"
	"slices"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

var t0 = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

// serverLease is a server's Lease as its Lease would write it: renewed
// at renewed for seconds, naming url.
func serverLease(name, url string, renewed time.Time, seconds int32) coordinationv1.Lease {
	at := metav1.NewMicroTime(renewed)
	return coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: Namespace, Name: LeaseName(name),
			Labels:      map[string]string{skiffv1alpha1.ServerLeaseLabel: "true"},
			Annotations: map[string]string{skiffv1alpha1.ServerURLAnnotation: url},
		},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(name), LeaseDurationSeconds: ptr.To(seconds), RenewTime: &at},
	}
}

func TestLive(t *testing.T) {
	fresh := func(name, url string) coordinationv1.Lease { return serverLease(name, url, t0.Add(-5*time.Second), 30) }
	with := func(l coordinationv1.Lease, change func(*coordinationv1.Lease)) coordinationv1.Lease {
		change(&l)
		return l
	}
	cases := []struct {
		name   string
		leases []coordinationv1.Lease
		want   []string
	}{
		{"none", nil, []string{}},
		{"one fresh", []coordinationv1.Lease{fresh("a", "https://10.0.0.1:6443")}, []string{"https://10.0.0.1:6443"}},
		{"sorted and each once", []coordinationv1.Lease{
			fresh("c", "https://10.0.0.3:6443"), fresh("a", "https://10.0.0.1:6443"),
			fresh("b", "https://10.0.0.3:6443"), fresh("d", "https://10.0.0.2:6443"),
		}, []string{"https://10.0.0.1:6443", "https://10.0.0.2:6443", "https://10.0.0.3:6443"}},
		{"expired", []coordinationv1.Lease{serverLease("a", "https://a:1", t0.Add(-31*time.Second), 30)}, []string{}},
		{"expiring now", []coordinationv1.Lease{serverLease("a", "https://a:1", t0.Add(-30*time.Second), 30)}, []string{}},
		{"a moment before expiring", []coordinationv1.Lease{serverLease("a", "https://a:1", t0.Add(-30*time.Second+time.Millisecond), 30)}, []string{"https://a:1"}},
		{"its own duration, not ours", []coordinationv1.Lease{serverLease("a", "https://a:1", t0.Add(-50*time.Second), 60)}, []string{"https://a:1"}},
		{"renewed ahead of our clock", []coordinationv1.Lease{serverLease("a", "https://a:1", t0.Add(5*time.Second), 30)}, []string{"https://a:1"}},
		{"never renewed", []coordinationv1.Lease{with(fresh("a", "https://a:1"), func(l *coordinationv1.Lease) { l.Spec.RenewTime = nil })}, []string{}},
		{"no duration", []coordinationv1.Lease{with(fresh("a", "https://a:1"), func(l *coordinationv1.Lease) { l.Spec.LeaseDurationSeconds = nil })}, []string{}},
		{"zero duration", []coordinationv1.Lease{with(fresh("a", "https://a:1"), func(l *coordinationv1.Lease) { l.Spec.LeaseDurationSeconds = ptr.To[int32](0) })}, []string{}},
		{"being deleted", []coordinationv1.Lease{with(fresh("a", "https://a:1"), func(l *coordinationv1.Lease) {
			l.DeletionTimestamp = &metav1.Time{Time: t0}
		})}, []string{}},
		{"no URL", []coordinationv1.Lease{with(fresh("a", ""), func(l *coordinationv1.Lease) { l.Annotations = nil })}, []string{}},
		{"not https", []coordinationv1.Lease{fresh("a", "http://10.0.0.1:6443"), fresh("b", "10.0.0.2:6443"), fresh("c", "https://")}, []string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Live(tc.leases, t0)
			if got == nil || !slices.Equal(got, tc.want) {
				t.Fatalf("Live = %#v, want %#v", got, tc.want)
			}
		})
	}
}

// TestGossipSeeds: the live servers' gossip addresses, not one's own, not
// a dead server's, not a Lease without one.
func TestGossipSeeds(t *testing.T) {
	gossip := func(l coordinationv1.Lease, addr string) coordinationv1.Lease {
		l.Annotations[skiffv1alpha1.ServerGossipAnnotation] = addr
		return l
	}
	now := time.Now()
	c := fakeClient(t, interceptor.Funcs{},
		gossip(serverLease("a", "https://10.0.0.1:6443", now, 30), "10.0.0.1:7946"),
		gossip(serverLease("b", "https://10.0.0.2:6443", now, 30), "10.0.0.2:7946"),
		gossip(serverLease("c", "https://10.0.0.3:6443", now.Add(-time.Minute), 30), "10.0.0.3:7946"),
		serverLease("d", "https://10.0.0.4:6443", now, 30),
	)
	got, err := GossipSeeds(context.Background(), c, "10.0.0.1:7946", now)
	if err != nil || !slices.Equal(got, []string{"10.0.0.2:7946"}) {
		t.Errorf("seeds %v, %v; want only b's (a is this server, c is dead, d has none)", got, err)
	}
	l, err := NewLease(c, "e", "https://10.0.0.5:6443")
	if err != nil {
		t.Fatal(err)
	}
	var written coordinationv1.Lease
	l.WithGossip("10.0.0.5:7946").stamp(&written)
	if written.Annotations[skiffv1alpha1.ServerGossipAnnotation] != "10.0.0.5:7946" {
		t.Errorf("a Lease with gossip: annotations %v", written.Annotations)
	}
}
