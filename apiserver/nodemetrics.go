package apiserver

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/registry/rest"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// nodeMetricsREST is a Node's metrics subresource: the agent's /metrics
// (Prometheus text), which the agent serves only to the API server. So an
// agent's metrics are read as the API server authorizes (admins, not
// other nodes), as Kubernetes serves a kubelet's through
// nodes/NAME/proxy/metrics.
type nodeMetricsREST struct {
	nodes rest.Getter
	// cert is the API server's client certificate towards agents.
	cert agentCert
}

var (
	_ rest.Getter          = (*nodeMetricsREST)(nil)
	_ rest.StorageMetadata = (*nodeMetricsREST)(nil)
)

func (r *nodeMetricsREST) New() runtime.Object { return &skiffv1alpha1.Node{} }

func (r *nodeMetricsREST) Destroy() {}

func (r *nodeMetricsREST) ProducesMIMETypes(string) []string { return []string{"text/plain"} }

func (r *nodeMetricsREST) ProducesObject(string) interface{} { return "" }

func (r *nodeMetricsREST) Get(ctx context.Context, name string, _ *metav1.GetOptions) (runtime.Object, error) {
	obj, err := r.nodes.Get(ctx, name, &metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	node := obj.(*skiffv1alpha1.Node)
	client, base, err := agentOf(node, r.cert)
	if err != nil {
		return nil, err
	}
	return &agentStream{url: base + "/metrics", node: node.Name, client: client}, nil
}
