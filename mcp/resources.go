package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"k8s.io/apimachinery/pkg/types"
)

// Resource URIs.
const (
	clusterStatusURI = "skiff://cluster/status"
	workloadURIs     = "skiff://workloads/{namespace}/{name}"
	nodeURIs         = "skiff://nodes/{name}"
)

func (b *Bridge) addResources() {
	if !b.cfg.denied("Node") && !b.cfg.denied("Workload") && !b.cfg.denied("Instance") {
		b.server.AddResource(&sdk.Resource{URI: clusterStatusURI, Name: "cluster-status", Title: "Cluster status", MIMEType: "application/json",
			Description: "get_cluster_status as a resource; subscribe to hear when Nodes, Workloads or Instances change."}, b.readResource)
	}
	if !b.cfg.denied("Workload") {
		b.server.AddResourceTemplate(&sdk.ResourceTemplate{URITemplate: workloadURIs, Name: "workload", Title: "A Workload", MIMEType: "application/json",
			Description: "One Workload's summary and object; subscribe to hear when it changes."}, b.readResource)
	}
	if !b.cfg.denied("Node") {
		b.server.AddResourceTemplate(&sdk.ResourceTemplate{URITemplate: nodeURIs, Name: "node", Title: "A Node", MIMEType: "application/json",
			Description: "One Node's summary and object; subscribe to hear when it changes."}, b.readResource)
	}
}

// resourceRef is what a resource URI names.
type resourceRef struct {
	uri string
	// kind is Cluster, Workload or Node.
	kind string
	key  types.NamespacedName
}

func parseResourceURI(uri string) (resourceRef, error) {
	ref := resourceRef{uri: uri}
	rest, ok := strings.CutPrefix(uri, "skiff://")
	parts := strings.Split(rest, "/")
	switch {
	case ok && rest == "cluster/status":
		ref.kind = "Cluster"
	case ok && len(parts) == 3 && parts[0] == "workloads" && parts[1] != "" && parts[2] != "":
		ref.kind, ref.key = "Workload", types.NamespacedName{Namespace: parts[1], Name: parts[2]}
	case ok && len(parts) == 2 && parts[0] == "nodes" && parts[1] != "":
		ref.kind, ref.key = "Node", types.NamespacedName{Name: parts[1]}
	default:
		return ref, fmt.Errorf("unknown resource %q: skiff serves %s, %s and %s", uri, clusterStatusURI, workloadURIs, nodeURIs)
	}
	return ref, nil
}

func (b *Bridge) readResource(ctx context.Context, req *sdk.ReadResourceRequest) (*sdk.ReadResourceResult, error) {
	ref, err := parseResourceURI(req.Params.URI)
	if err != nil {
		return nil, sdk.ResourceNotFoundError(req.Params.URI)
	}
	conn, err := b.conns.For(ctx, req.Extra)
	if err != nil {
		return nil, err
	}
	body, err := b.resourceBody(ctx, conn, ref)
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	if size := wireSize(string(data)); size > b.cfg.MaxResponseBytes-resultOverhead {
		return nil, fmt.Errorf("resource %s is %d bytes as sent, over the response cap of %d", ref.uri, size, b.cfg.MaxResponseBytes)
	}
	return &sdk.ReadResourceResult{Contents: []*sdk.ResourceContents{{URI: ref.uri, MIMEType: "application/json", Text: string(data)}}}, nil
}

// resourceBody reads what ref names as the caller.
func (b *Bridge) resourceBody(ctx context.Context, conn *Conn, ref resourceRef) (any, error) {
	switch ref.kind {
	case "Cluster":
		return b.clusterStatus(ctx, conn)
	case "Workload":
		return b.workloadView(ctx, conn, ref.key)
	default:
		return b.nodeView(ctx, conn, ref.key.Name)
	}
}
