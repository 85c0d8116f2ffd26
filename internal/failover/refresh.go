package failover

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"k8s.io/klog/v2"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// Timing of a Refresher.
const (
	// DefaultInterval is how often a Refresher asks for the list.
	DefaultInterval = 30 * time.Second
	// afterFailover is how long a Refresher waits after a server failed
	// before it asks: the failover settles, and while every server is
	// down it asks at most this often.
	afterFailover = time.Second
	// refreshTimeout bounds one request for the list.
	refreshTimeout = 10 * time.Second
)

// Refresher keeps Servers current from the API: it GETs
// skiffv1alpha1.ServersPath (the servers alive now) at start, every
// Interval, and soon after a request failed over. A server that does not
// serve the list (404, 403: an older server), or serves an empty one,
// leaves it as it is.
type Refresher struct {
	// Servers is the list to keep current.
	Servers *Servers
	// Client asks for the list; its transport should be Servers.Wrap'd,
	// with the cluster's credentials and serving certificate.
	Client *http.Client
	// Interval is how often the list is asked for; 0 is DefaultInterval.
	Interval time.Duration
	// Keep are servers kept in the list whatever the API says: the ones
	// configured, which may be names the API does not list (a loopback
	// address, a DNS name) for servers it does.
	Keep []string
	// Changed, when not nil, is called with the list after a refresh
	// changed it (to keep it across restarts). It is called from Start's
	// goroutine and should return quickly.
	Changed func(servers []string)
}

// Start refreshes the list until ctx ends; it returns nil then. A failed
// refresh is logged and tried again later.
func (r *Refresher) Start(ctx context.Context) error {
	tick := time.NewTicker(cmp.Or(r.Interval, DefaultInterval))
	defer tick.Stop()
	for {
		if err := r.Refresh(ctx); err != nil && ctx.Err() == nil {
			klog.ErrorS(err, "refresh the list of API servers", "current", r.Servers.Current())
		}
		// The refresh's own failover calls for no other.
		select {
		case <-r.Servers.moved:
		default:
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-r.Servers.moved:
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(afterFailover):
			}
		}
	}
}

// serverList is the body of skiffv1alpha1.ServersPath.
type serverList struct {
	Servers []string `json:"servers"`
}

// Refresh asks for the list once and replaces the known one with it (and
// Keep), calling Changed if that changed it.
func (r *Refresher) Refresh(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, refreshTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.Servers.Current()+skiffv1alpha1.ServersPath, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", skiffv1alpha1.ServersPath, err)
	}
	resp, err := r.Client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", skiffv1alpha1.ServersPath, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case err != nil:
		return fmt.Errorf("GET %s: %w", skiffv1alpha1.ServersPath, err)
	case resp.StatusCode == http.StatusNotFound, resp.StatusCode == http.StatusForbidden:
		return nil // no list served: the known one stands
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("GET %s: %s", skiffv1alpha1.ServersPath, resp.Status)
	}
	var list serverList
	if err := json.Unmarshal(body, &list); err != nil {
		return fmt.Errorf("GET %s: %w", skiffv1alpha1.ServersPath, err)
	}
	if len(list.Servers) == 0 {
		return nil // no server renews its Lease (yet): the known list stands
	}
	changed, err := r.Servers.Replace(append(list.Servers, r.Keep...))
	if err != nil {
		return fmt.Errorf("GET %s: %w", skiffv1alpha1.ServersPath, err)
	}
	if changed && r.Changed != nil {
		r.Changed(r.Servers.List())
	}
	return nil
}
