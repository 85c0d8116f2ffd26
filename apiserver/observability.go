package apiserver

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	clientv3 "go.etcd.io/etcd/client/v3"
	handlersmetrics "k8s.io/apiserver/pkg/endpoints/handlers/metrics"
	apimetrics "k8s.io/apiserver/pkg/endpoints/metrics"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	genericapiserver "k8s.io/apiserver/pkg/server"
	cachermetrics "k8s.io/apiserver/pkg/storage/cacher/metrics"
	etcd3metrics "k8s.io/apiserver/pkg/storage/etcd3/metrics"
	storagemetrics "k8s.io/apiserver/pkg/storage/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
)

// registerLibraryMetrics registers the apiserver library's metrics in its
// (process-wide, idempotent) legacy registry, as its own /metrics would.
func registerLibraryMetrics() {
	apimetrics.Register()
	handlersmetrics.Register()
	storagemetrics.Register()
	cachermetrics.Register()
	etcd3metrics.Register()
}

// ComponentHealth is one entry of the /health document.
type ComponentHealth struct {
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	// Detail is what the component reports of itself (the cluster's
	// members and this member's health score).
	Detail any `json:"detail,omitempty"`
}

// Health is the /health document: overall status and one entry per
// component (state_store, and those added in the same process: cluster,
// controllers, scheduler).
type Health struct {
	Status     string                     `json:"status"`
	Components map[string]ComponentHealth `json:"components"`
}

// installObservability adds /health, /live, /ready and /metrics.
func (s *Server) installObservability(generic *genericapiserver.GenericAPIServer, stores *installed, etcd *clientv3.Client) {
	mux := generic.Handler.NonGoRestfulMux
	health := &healthCache{compute: func(ctx context.Context) Health { return s.health(ctx, etcd) }, now: time.Now}
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		h := health.get()
		w.Header().Set("Content-Type", "application/json")
		if h.Status != "ok" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(h)
	})
	alias := func(from, to string) {
		mux.HandleFunc(from, func(w http.ResponseWriter, r *http.Request) {
			r2 := r.Clone(r.Context())
			r2.URL.Path = to
			mux.ServeHTTP(w, r2)
		})
	}
	for path, h := range s.handlers {
		mux.Handle(path, h)
		mux.HandlePrefix(path+"/", h)
	}
	alias("/live", "/livez")
	alias("/ready", "/readyz")

	registerLibraryMetrics()
	reg := prometheus.NewRegistry()
	reg.MustRegister(&objectCounter{etcd: etcd, prefix: s.cfg.EtcdPrefix, stores: stores})
	gather := append(prometheus.Gatherers{legacyregistry.DefaultGatherer, reg}, s.gatherers...)
	mux.Handle("/metrics", promhttp.HandlerFor(gather, promhttp.HandlerOpts{}))
}

// health reads every component's state: etcd, then the checks and
// reports of the parts in this process.
func (s *Server) health(ctx context.Context, etcd *clientv3.Client) Health {
	h := Health{Status: "ok", Components: map[string]ComponentHealth{}}
	store := ComponentHealth{Status: "ok"}
	if _, err := etcd.Get(ctx, "health", clientv3.WithCountOnly()); err != nil {
		store, h.Status = ComponentHealth{Status: "failed", Error: err.Error()}, "failed"
	}
	h.Components["state_store"] = store
	for name, check := range s.checks {
		c := ComponentHealth{Status: "ok"}
		if err := check(ctx); err != nil {
			c, h.Status = ComponentHealth{Status: "failed", Error: err.Error()}, "failed"
		}
		h.Components[name] = c
	}
	for name, report := range s.reports {
		detail, err := report(ctx)
		c := ComponentHealth{Status: "ok", Detail: detail}
		if err != nil {
			c.Status, c.Error, h.Status = "failed", err.Error(), "failed"
		}
		h.Components[name] = c
	}
	return h
}

// objectCounter reports skiff_objects_stored by kind, counted in etcd at
// scrape time (a count-only range read per kind: no objects are decoded).
type objectCounter struct {
	etcd   *clientv3.Client
	prefix string
	stores *installed
}

var objectsStoredDesc = prometheus.NewDesc("skiff_objects_stored",
	"Objects stored in etcd, by kind.", []string{"group", "kind"}, nil)

func (c *objectCounter) Describe(ch chan<- *prometheus.Desc) { ch <- objectsStoredDesc }

func (c *objectCounter) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for k, store := range c.stores.byKind {
		root := store.KeyRootFunc(genericapirequest.NewContext())
		resp, err := c.etcd.Get(ctx, c.prefix+root+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			ch <- prometheus.NewInvalidMetric(objectsStoredDesc, err)
			continue
		}
		ch <- prometheus.MustNewConstMetric(objectsStoredDesc, prometheus.GaugeValue, float64(resp.Count), k.GVK.Group, k.GVK.Kind)
	}
}
