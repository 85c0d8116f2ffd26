package serverlist

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

const (
	// Namespace holds the servers' Leases: apiserver.SystemNamespace,
	// which this package cannot import (the apiserver uses it).
	Namespace = "skiff-system"
	// LeaseDuration is how long a Lease vouches for its server unrenewed.
	LeaseDuration = 30 * time.Second
	// RenewInterval is how often a server renews its Lease: a third of
	// LeaseDuration, so that two renewals may fail before it expires.
	RenewInterval = 10 * time.Second
	// releaseTimeout bounds the deletion of the Lease when its server
	// stops: past it, the Lease expires by itself.
	releaseTimeout = 5 * time.Second
	// firstRetry is the wait after a failed renewal; it doubles up to
	// RenewInterval, so that a server that is not serving yet is listed
	// soon after it is.
	firstRetry = 500 * time.Millisecond
)

// LeaseName is the name of server's Lease.
func LeaseName(server string) string { return "apiserver-" + server }

// Lease keeps one API server's Lease while the server serves. It keeps
// the Lease it last wrote, so a renewal is one update; it reads the Lease
// again only after a conflict.
type Lease struct {
	client      client.Client
	server, url string
	// gossip is the server's gossip address ("": none).
	gossip        string
	interval      time.Duration
	firstRetry    time.Duration
	now           func() time.Time
	deleteTimeout time.Duration

	// mu orders the writes: Release waits for a renewal in flight, and
	// no renewal follows it.
	mu    sync.Mutex
	lease *coordinationv1.Lease // the last written; nil: read it first
	// written says a Lease was written by this process, uid which one
	// (empty when the server sets none, as fake clients do not).
	written  bool
	uid      types.UID
	released bool
}

// NewLease returns the Lease of the API server named server (its etcd
// member name), serving at serverURL (https://host:port). c's scheme must
// know coordination.k8s.io/v1 (client.New's default does); it must be
// allowed to write Leases in Namespace.
func NewLease(c client.Client, server, serverURL string) (*Lease, error) {
	if errs := validation.IsDNS1123Subdomain(LeaseName(server)); len(errs) > 0 {
		return nil, fmt.Errorf("server name %q: its Lease %q: %s", server, LeaseName(server), strings.Join(errs, "; "))
	}
	if err := checkURL(serverURL); err != nil {
		return nil, fmt.Errorf("server %q: %w", server, err)
	}
	return &Lease{
		client: c, server: server, url: serverURL,
		interval: RenewInterval, firstRetry: firstRetry, deleteTimeout: releaseTimeout, now: time.Now,
	}, nil
}

// WithGossip makes the Lease carry the server's gossip address (ip:port),
// where the other servers join its gossip (GossipSeeds).
func (l *Lease) WithGossip(addr string) *Lease {
	l.gossip = addr
	return l
}

// checkURL accepts what clients can dial: https with a host.
func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("URL %q: %w", s, err)
	}
	if u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("URL %q: want https://host:port", s)
	}
	return nil
}

// Run renews the Lease until ctx ends, then deletes it (Release). A
// failed renewal is logged and retried sooner than the next renewal
// (first after half a second, doubling up to RenewInterval): the API
// server may not be serving yet, or etcd may be away for a while. Run
// returns nil: nothing it meets is fatal to the server.
func (l *Lease) Run(ctx context.Context) error {
	retryAfter := l.firstRetry
	for {
		wait := l.interval
		if err := l.renew(ctx); err != nil {
			if ctx.Err() != nil {
				break
			}
			klog.ErrorS(err, "renewing the API server's Lease; retrying", "server", l.server, "in", retryAfter)
			wait, retryAfter = retryAfter, min(2*retryAfter, l.interval)
		} else {
			retryAfter = l.firstRetry
		}
		if !sleep(ctx, wait) {
			break
		}
	}
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.deleteTimeout)
	defer cancel()
	if err := l.Release(stopCtx); err != nil {
		klog.ErrorS(err, "deleting the API server's Lease as it stops; it expires unrenewed", "server", l.server, "in", LeaseDuration)
	}
	return nil
}

// sleep waits for d; it returns false when ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// renew writes the Lease, re-reading it after a conflict; after Release
// it writes nothing.
func (l *Lease) renew(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return nil
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		err := l.write(ctx)
		if apierrors.IsConflict(err) {
			l.lease = nil
		}
		return err
	})
}

func (l *Lease) write(ctx context.Context) error {
	key := client.ObjectKey{Namespace: Namespace, Name: LeaseName(l.server)}
	if l.lease == nil {
		var lease coordinationv1.Lease
		err := l.client.Get(ctx, key, &lease)
		switch {
		case apierrors.IsNotFound(err):
			return l.create(ctx, key)
		case err != nil:
			return fmt.Errorf("lease %s: %w", key, err)
		}
		l.warnIfTaken(&lease)
		l.lease = &lease
	}
	l.stamp(l.lease)
	if err := l.client.Update(ctx, l.lease); apierrors.IsNotFound(err) {
		return l.create(ctx, key) // deleted meanwhile (Remove, or by hand)
	} else if err != nil {
		return fmt.Errorf("lease %s: %w", key, err)
	}
	l.written, l.uid = true, l.lease.UID
	return nil
}

func (l *Lease) create(ctx context.Context, key client.ObjectKey) error {
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	l.stamp(lease)
	if err := l.client.Create(ctx, lease); err != nil {
		l.lease = nil
		if apierrors.IsAlreadyExists(err) {
			// Created meanwhile: read it and update it, as after a conflict.
			return apierrors.NewConflict(coordinationv1.Resource("leases"), key.Name, err)
		}
		return fmt.Errorf("lease %s: %w", key, err)
	}
	l.lease, l.written, l.uid = lease, true, lease.UID
	return nil
}

// stamp makes lease this server's, renewed now.
func (l *Lease) stamp(lease *coordinationv1.Lease) {
	now := metav1.NewMicroTime(l.now())
	if lease.Labels == nil {
		lease.Labels = map[string]string{}
	}
	lease.Labels[skiffv1alpha1.ServerLeaseLabel] = "true"
	if lease.Annotations == nil {
		lease.Annotations = map[string]string{}
	}
	lease.Annotations[skiffv1alpha1.ServerURLAnnotation] = l.url
	if l.gossip != "" {
		lease.Annotations[skiffv1alpha1.ServerGossipAnnotation] = l.gossip
	}
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != l.server || lease.Spec.AcquireTime == nil {
		lease.Spec.AcquireTime = &now
	}
	lease.Spec.HolderIdentity = ptr.To(l.server)
	lease.Spec.LeaseDurationSeconds = ptr.To(int32(LeaseDuration / time.Second))
	lease.Spec.RenewTime = &now
}

// warnIfTaken logs when the Lease was renewed lately with another URL:
// by this server's last run at another address, or by another server
// given the same name, and then the list names one of the two at a time.
func (l *Lease) warnIfTaken(lease *coordinationv1.Lease) {
	other := lease.Annotations[skiffv1alpha1.ServerURLAnnotation]
	if other != l.url && live(lease, l.now()) {
		klog.ErrorS(nil, "this server's Lease was renewed lately with another URL: is another server named alike?",
			"server", l.server, "lease", LeaseName(l.server), "otherURL", other, "url", l.url)
	}
}

// Release deletes the Lease this process wrote, so that the list drops
// the server at once, and stops its renewals: Run calls it when its ctx
// ends; a server may call it earlier, from a hook that runs while it
// still serves. A Lease since recreated by another process (another
// UID) is left alone.
func (l *Lease) Release(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return nil
	}
	l.released = true
	if !l.written {
		return nil
	}
	var opts []client.DeleteOption
	if l.uid != "" {
		opts = append(opts, client.Preconditions{UID: &l.uid})
	}
	err := deleteLease(ctx, l.client, l.server, opts...)
	if apierrors.IsConflict(err) {
		return nil // not ours any more
	}
	return err
}

// Remove deletes the Lease of server, one removed from the cluster, so
// that the list drops it before it expires. A missing Lease is no error.
func Remove(ctx context.Context, c client.Client, server string) error {
	return deleteLease(ctx, c, server)
}

func deleteLease(ctx context.Context, c client.Client, server string, opts ...client.DeleteOption) error {
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: Namespace, Name: LeaseName(server)}}
	if err := c.Delete(ctx, lease, opts...); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete lease %s/%s: %w", Namespace, lease.Name, err)
	}
	return nil
}
