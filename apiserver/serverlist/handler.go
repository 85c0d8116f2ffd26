package serverlist

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// List is the answer at skiffv1alpha1.ServersPath.
type List struct {
	// Servers are the live API servers' URLs, sorted, each once; empty
	// (not null) when none is.
	Servers []string `json:"servers"`
}

// Handler serves List at skiffv1alpha1.ServersPath to GET; it reads the
// Leases anew for each request (clients ask rarely: agents every 30 s).
// The API server puts it behind its authentication and authorization.
type Handler struct {
	reader client.Reader
	now    func() time.Time
}

var _ http.Handler = (*Handler)(nil)

// NewHandler reads the Leases through r (its scheme must know
// coordination.k8s.io/v1), which must be allowed to list them in
// Namespace.
func NewHandler(r client.Reader) *Handler { return &Handler{reader: r, now: time.Now} }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path != skiffv1alpha1.ServersPath:
		http.NotFound(w, r)
		return
	case r.Method != http.MethodGet:
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "GET "+skiffv1alpha1.ServersPath, http.StatusMethodNotAllowed)
		return
	}
	servers, err := h.Servers(r.Context())
	if err != nil {
		klog.ErrorS(err, "listing the live API servers")
		http.Error(w, "the API servers' Leases cannot be read now", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(List{Servers: servers})
}

// Servers lists the Leases and returns the live servers' URLs (Live).
func (h *Handler) Servers(ctx context.Context) ([]string, error) {
	leases, err := serverLeases(ctx, h.reader)
	if err != nil {
		return nil, err
	}
	return Live(leases, h.now()), nil
}

// serverLeases lists the API servers' Leases.
func serverLeases(ctx context.Context, r client.Reader) ([]coordinationv1.Lease, error) {
	var leases coordinationv1.LeaseList
	if err := r.List(ctx, &leases, client.InNamespace(Namespace),
		client.MatchingLabels{skiffv1alpha1.ServerLeaseLabel: "true"}); err != nil {
		return nil, fmt.Errorf("list leases in %s: %w", Namespace, err)
	}
	return leases.Items, nil
}

// Live returns the URLs of the leases that are live at now, sorted and
// each once (never nil). A Lease is live when its renewTime plus its
// leaseDurationSeconds is after now and it names an https URL; one being
// deleted is not.
func Live(leases []coordinationv1.Lease, now time.Time) []string {
	urls := []string{}
	for i := range leases {
		l := &leases[i]
		u := l.Annotations[skiffv1alpha1.ServerURLAnnotation]
		if live(l, now) && checkURL(u) == nil {
			urls = append(urls, u)
		}
	}
	slices.Sort(urls)
	return slices.Compact(urls)
}

// GossipSeeds lists the live servers' gossip addresses but self's, for
// a server to join the others' gossip.
func GossipSeeds(ctx context.Context, r client.Reader, self string, now time.Time) ([]string, error) {
	leases, err := serverLeases(ctx, r)
	if err != nil {
		return nil, err
	}
	var seeds []string
	for i := range leases {
		l := &leases[i]
		if g := l.Annotations[skiffv1alpha1.ServerGossipAnnotation]; g != "" && g != self && live(l, now) {
			seeds = append(seeds, g)
		}
	}
	slices.Sort(seeds)
	return slices.Compact(seeds), nil
}

// live says whether l was renewed less than its duration before now.
func live(l *coordinationv1.Lease, now time.Time) bool {
	s := l.Spec
	if l.DeletionTimestamp != nil || s.RenewTime == nil || s.LeaseDurationSeconds == nil || *s.LeaseDurationSeconds <= 0 {
		return false
	}
	return s.RenewTime.Add(time.Duration(*s.LeaseDurationSeconds) * time.Second).After(now)
}
