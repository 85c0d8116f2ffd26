package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/nodeagent/network"
)

// nodeNetworker is what the node network controller drives.
type nodeNetworker interface {
	SetSubnet(netip.Prefix) error
	SetPeers([]network.Peer) error
}

// nodeNetwork keeps the node's side of Instance networking in line with
// the Nodes: the CNI configuration and rules once the node has its
// instanceCIDR, and a route to every other node's subnet via its address.
// Every Node event asks for the same whole pass, so a burst of them costs
// one; a pass also runs every resync to repair routes and rules.
type nodeNetwork struct {
	client  client.Reader
	node    string
	network nodeNetworker
}

// networkResync is how often routes and rules are checked without a
// Node event.
const networkResync = time.Minute

func addNodeNetwork(mgr manager.Manager, node string, n nodeNetworker) error {
	r := &nodeNetwork{client: mgr.GetClient(), node: node, network: n}
	one := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: "network"}}}
	})
	err := builder.ControllerManagedBy(mgr).Named("network-"+node).
		WithOptions(controller.Options{SkipNameValidation: ptr.To(true), MaxConcurrentReconciles: 1}).
		Watches(&skiffv1alpha1.Node{}, one, builder.WithPredicates(routingChanged)).
		Complete(r)
	if err != nil {
		return fmt.Errorf("node network controller: %w", err)
	}
	return nil
}

// routingChanged passes the Node events that can change a route or the
// node's subnet: not the status writes every node makes each minute.
var routingChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, ok1 := e.ObjectOld.(*skiffv1alpha1.Node)
		n, ok2 := e.ObjectNew.(*skiffv1alpha1.Node)
		return !ok1 || !ok2 || o.Spec.InstanceCIDR != n.Spec.InstanceCIDR || internalIP(o) != internalIP(n)
	},
}

func (r *nodeNetwork) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	var nodes skiffv1alpha1.NodeList
	if err := r.client.List(ctx, &nodes); err != nil {
		return reconcile.Result{}, err
	}
	var errs []error
	peers := make([]network.Peer, 0, len(nodes.Items))
	for i := range nodes.Items {
		n := &nodes.Items[i]
		if n.Spec.InstanceCIDR == "" {
			continue
		}
		subnet, err := netip.ParsePrefix(n.Spec.InstanceCIDR)
		if err != nil {
			continue // validation keeps these out
		}
		if n.Name == r.node {
			if err := r.network.SetSubnet(subnet); err != nil {
				errs = append(errs, fmt.Errorf("node %s instanceCIDR %s: %w", n.Name, subnet, err))
			}
			continue
		}
		addr, err := netip.ParseAddr(internalIP(n))
		if err != nil {
			continue // not reporting yet: its route comes with its status
		}
		peers = append(peers, network.Peer{Name: n.Name, Subnet: subnet, Address: addr})
	}
	if err := r.network.SetPeers(peers); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		klog.ErrorS(err, "node network", "node", r.node)
		return reconcile.Result{}, err
	}
	return reconcile.Result{RequeueAfter: networkResync}, nil
}

// internalIP is a Node's first IPv4 InternalIP address, the one other
// nodes route its subnet through.
func internalIP(n *skiffv1alpha1.Node) string {
	for _, a := range n.Status.Addresses {
		if ip, err := netip.ParseAddr(a.Address); err == nil && ip.Is4() && a.Type == skiffv1alpha1.NodeInternalIP {
			return a.Address
		}
	}
	return ""
}
