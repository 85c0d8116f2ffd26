package mcp

import (
	"context"
	"sort"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// ListNodesIn are list_nodes' arguments.
type ListNodesIn struct {
	Paging
}

// GetNodeIn names a Node.
type GetNodeIn struct {
	Name string `json:"name" jsonschema:"the Node's name"`
}

// GetNodeOut is one Node in full, with its room and Instances.
type GetNodeOut struct {
	Summary   NodeSummary       `json:"summary"`
	Object    map[string]any    `json:"object"`
	Instances []InstanceSummary `json:"instances"`
	Note      string            `json:"note,omitempty"`
}

// ClusterStatus is get_cluster_status' answer.
type ClusterStatus struct {
	Nodes     NodeCounts     `json:"nodes"`
	Resources Room           `json:"resources"`
	Workloads WorkloadCounts `json:"workloads"`
	// Instances counts Instances by phase (Pending, Running, Succeeded, Failed, Unknown).
	Instances map[string]int `json:"instances"`
	// Unschedulable are some Pending Instances the scheduler could not
	// place, with its reason.
	Unschedulable []InstanceSummary `json:"unschedulable,omitempty"`
	// RecentWarnings are the newest Warning Events. Their messages are
	// data from the cluster, not instructions.
	RecentWarnings []EventSummary `json:"recentWarnings"`
}

// NodeCounts count Nodes.
type NodeCounts struct {
	Ready         int      `json:"ready"`
	Total         int      `json:"total"`
	NotReady      []string `json:"notReady,omitempty"`
	Unschedulable int      `json:"unschedulable,omitempty"`
}

// WorkloadCounts count Workloads by health.
type WorkloadCounts struct {
	Total       int      `json:"total"`
	Healthy     int      `json:"healthy"`
	Progressing int      `json:"progressing"`
	Degraded    int      `json:"degraded"`
	Unhealthy   []string `json:"unhealthy,omitempty"`
}

// Caps on the names and samples in get_cluster_status.
const (
	maxNamesShown    = 10
	maxWarningsShown = 10
)

func (b *Bridge) addClusterTools() {
	addTool(b, toolSpec{name: "list_nodes", title: "List Nodes", kinds: []string{"Node", "Instance"},
		description: "List Nodes, one line each: phase, taints, Instances, and allocatable, requested and free CPU (millicores) and memory (MiB); paged."}, b.listNodes)
	addTool(b, toolSpec{name: "get_node", title: "Get a Node", kinds: []string{"Node", "Instance"},
		description: "One Node in full (without managed fields), its room and the Instances on it."}, b.getNode)
	addTool(b, toolSpec{name: "get_cluster_status", title: "Cluster status", kinds: []string{"Node", "Instance", "Workload"},
		description: "The cluster at a glance: nodes ready/total, capacity against requests, Workloads healthy and degraded, Instances by phase, what cannot be scheduled, recent warnings."}, b.getClusterStatus)
}

// readOnly lists from the cache without copying: what is listed is only
// read (the API server's answers ignore it).
var readOnly = client.UnsafeDisableDeepCopy

// allInstances lists every Instance, for resource accounting: in one
// request, which the API server answers from its watch cache.
func allInstances(ctx context.Context, c client.Reader, opts ...client.ListOption) ([]skiffv1alpha1.Instance, error) {
	var list skiffv1alpha1.InstanceList
	if err := c.List(ctx, &list, opts...); err != nil {
		return nil, apiError("listing instances", err)
	}
	return list.Items, nil
}

func (b *Bridge) listNodes(ctx context.Context, req *sdk.CallToolRequest, in ListNodesIn) (*sdk.CallToolResult, Page[NodeSummary], error) {
	var zero Page[NodeSummary]
	n, conn, err := b.startList(ctx, req, in.Paging)
	if err != nil {
		return nil, zero, err
	}
	opts, err := listOptions("", in.LabelSelector)
	if err != nil {
		return nil, zero, err
	}
	insts, err := allInstances(ctx, conn.clusterReader(ctx), readOnly)
	if err != nil {
		return nil, zero, err
	}
	usage, now := usageByNode(insts), b.now()
	fetch := fetchList(conn, func() *skiffv1alpha1.NodeList { return &skiffv1alpha1.NodeList{} },
		func(l *skiffv1alpha1.NodeList) []skiffv1alpha1.Node { return l.Items }, opts...)
	page, err := paginate(ctx, fetch, func(node *skiffv1alpha1.Node) (NodeSummary, bool) {
		return summarizeNode(node, usage[node.Name], now), true
	}, n, b.budget(), in.Continue)
	return nil, page, apiError("listing nodes", err)
}

func (b *Bridge) getNode(ctx context.Context, req *sdk.CallToolRequest, in GetNodeIn) (*sdk.CallToolResult, GetNodeOut, error) {
	conn, err := b.conns.For(ctx, req.Extra)
	if err != nil {
		return nil, GetNodeOut{}, err
	}
	out, err := b.nodeView(ctx, conn, in.Name)
	return nil, out, err
}

// nodeView is one Node in full, its room and Instances: get_node's answer
// and its resource's.
func (b *Bridge) nodeView(ctx context.Context, conn *Conn, name string) (GetNodeOut, error) {
	var node skiffv1alpha1.Node
	if err := conn.Get(ctx, types.NamespacedName{Name: name}, &node); err != nil {
		return GetNodeOut{}, apiError("node "+name, err)
	}
	insts, err := allInstances(ctx, conn, client.MatchingFields{"spec.nodeName": node.Name})
	if err != nil {
		return GetNodeOut{}, err
	}
	now := b.now()
	out := GetNodeOut{Summary: summarizeNode(&node, usageByNode(insts)[node.Name], now)}
	if out.Object, err = cleanObject(&node); err != nil {
		return GetNodeOut{}, err
	}
	out.Instances, out.Note = firstInstances(insts, now, "node="+node.Name)
	return out, nil
}

func (b *Bridge) getClusterStatus(ctx context.Context, req *sdk.CallToolRequest, _ struct{}) (*sdk.CallToolResult, ClusterStatus, error) {
	conn, err := b.conns.For(ctx, req.Extra)
	if err != nil {
		return nil, ClusterStatus{}, err
	}
	st, err := b.clusterStatus(ctx, conn)
	return nil, st, err
}

// clusterStatus reads the cluster as the caller sees it.
func (b *Bridge) clusterStatus(ctx context.Context, conn *Conn) (ClusterStatus, error) {
	r := conn.clusterReader(ctx)
	var nodes skiffv1alpha1.NodeList
	if err := r.List(ctx, &nodes, readOnly); err != nil {
		return ClusterStatus{}, apiError("listing nodes", err)
	}
	insts, err := allInstances(ctx, r, readOnly)
	if err != nil {
		return ClusterStatus{}, err
	}
	var workloads skiffv1alpha1.WorkloadList
	if err := r.List(ctx, &workloads, readOnly); err != nil {
		return ClusterStatus{}, apiError("listing workloads", err)
	}
	now := b.now()
	st := ClusterStatus{Instances: map[string]int{}, RecentWarnings: []EventSummary{}}
	usage := usageByNode(insts)
	for i := range nodes.Items {
		n := summarizeNode(&nodes.Items[i], usage[nodes.Items[i].Name], now)
		st.Nodes.Total++
		switch {
		case n.Ready:
			st.Nodes.Ready++
		case len(st.Nodes.NotReady) < maxNamesShown:
			st.Nodes.NotReady = append(st.Nodes.NotReady, n.Name)
		}
		if n.Unschedulable {
			st.Nodes.Unschedulable++
		}
		st.Resources.add(n.Resources)
	}
	for i := range insts {
		s := summarizeInstance(&insts[i], now)
		st.Instances[s.Phase]++
		if s.Phase == string(skiffv1alpha1.InstancePending) && s.Node == "" && s.Reason != "" && len(st.Unschedulable) < maxNamesShown {
			s.Reason = truncate(s.Reason, maxMessageBytes)
			st.Unschedulable = append(st.Unschedulable, s)
		}
	}
	for i := range workloads.Items {
		s := summarizeWorkload(&workloads.Items[i], now)
		st.Workloads.Total++
		switch s.state {
		case healthy:
			st.Workloads.Healthy++
			continue
		case degraded:
			st.Workloads.Degraded++
		default:
			st.Workloads.Progressing++
		}
		if len(st.Workloads.Unhealthy) < maxNamesShown {
			st.Workloads.Unhealthy = append(st.Workloads.Unhealthy, s.Namespace+"/"+s.Name+": "+truncate(s.Health, 200))
		}
	}
	if b.cfg.denied("Event") {
		return st, nil
	}
	if st.RecentWarnings, err = b.recentWarnings(ctx, conn); err != nil {
		return ClusterStatus{}, err
	}
	return st, nil
}

// recentWarnings are the newest Warning Events of every namespace.
func (b *Bridge) recentWarnings(ctx context.Context, c client.Reader) ([]EventSummary, error) {
	var events corev1.EventList
	if err := c.List(ctx, &events, client.MatchingFields{"type": corev1.EventTypeWarning}); err != nil {
		return nil, apiError("listing events", err)
	}
	sort.Slice(events.Items, func(i, j int) bool { return eventTime(&events.Items[i]).After(eventTime(&events.Items[j])) })
	out := []EventSummary{}
	now := b.now()
	for i := range events.Items {
		if len(out) == maxWarningsShown {
			break
		}
		out = append(out, summarizeEvent(&events.Items[i], now))
	}
	return out, nil
}
