package apiserver

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"time"

	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/klog/v2"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/identity"
)

// nodeKeys keeps the trust set in step with the Nodes: each Node's
// spec.publicKey is trusted as user skiff:node:NAME in group skiff:nodes,
// and stops being trusted when the Node goes away.
type nodeKeys struct {
	nodes *REST
	trust *identity.Trust
	// byName is the key currently trusted for each node; only Run touches it.
	byName map[string]ed25519.PublicKey
}

func newNodeKeys(nodes *REST, trust *identity.Trust) *nodeKeys {
	return &nodeKeys{nodes: nodes, trust: trust, byName: map[string]ed25519.PublicKey{}}
}

// Run lists and watches Nodes until ctx ends, re-listing when a watch ends.
func (k *nodeKeys) Run(ctx context.Context) { relist(ctx, "node key index", k.syncOnce) }

// relist calls syncOnce (a list, then a watch until it ends) until ctx
// ends: at once after a watch ended, a second after a failure.
func relist(ctx context.Context, what string, syncOnce func(context.Context) error) {
	for ctx.Err() == nil {
		if err := syncOnce(ctx); err != nil && ctx.Err() == nil {
			klog.ErrorS(err, "re-listing", "what", what)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

func (k *nodeKeys) syncOnce(ctx context.Context) error {
	ctx = genericapirequest.WithNamespace(ctx, "")
	obj, err := k.nodes.List(ctx, &metainternalversion.ListOptions{})
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	list := obj.(*skiffv1alpha1.NodeList)
	seen := map[string]bool{}
	for i := range list.Items {
		k.set(&list.Items[i])
		seen[list.Items[i].Name] = true
	}
	for name := range k.byName {
		if !seen[name] {
			k.forget(name)
		}
	}
	w, err := k.nodes.Watch(ctx, &metainternalversion.ListOptions{ResourceVersion: list.ResourceVersion, Watch: true})
	if err != nil {
		return fmt.Errorf("watch nodes: %w", err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.ResultChan():
			if !ok {
				return nil
			}
			node, isNode := eventNode(ev.Object)
			switch {
			case !isNode:
				return fmt.Errorf("watch nodes: unexpected %s event with %T", ev.Type, ev.Object)
			case ev.Type == watch.Deleted:
				k.forget(node.Name)
			default:
				k.set(node)
			}
		}
	}
}

func (k *nodeKeys) set(n *skiffv1alpha1.Node) {
	pub, err := identity.ParsePublicKey(n.Spec.PublicKey)
	if err != nil {
		k.forget(n.Name)
		return
	}
	if p, ok := k.trust.Lookup(pub); ok && p.Name != skiffv1alpha1.NodeUserPrefix+n.Name {
		// A key already trusted as someone else (the admin, another node)
		// never becomes this node's identity.
		klog.InfoS("node key index: key already belongs to another principal; not trusted for this node", "node", n.Name, "principal", p.Name)
		k.forget(n.Name)
		return
	}
	if old, ok := k.byName[n.Name]; ok && !old.Equal(pub) {
		k.trust.Remove(old)
	}
	k.byName[n.Name] = pub
	k.trust.Add(pub, identity.Principal{
		Name:   skiffv1alpha1.NodeUserPrefix + n.Name,
		Groups: []string{skiffv1alpha1.NodesGroup},
	})
}

func (k *nodeKeys) forget(name string) {
	if old, ok := k.byName[name]; ok {
		k.trust.Remove(old)
		delete(k.byName, name)
	}
}

// eventNode is the Node of a watch event: the watch cache hands out
// objects wrapped with their serializations.
func eventNode(obj runtime.Object) (*skiffv1alpha1.Node, bool) {
	if c, ok := obj.(runtime.CacheableObject); ok {
		obj = c.GetObject()
	}
	n, ok := obj.(*skiffv1alpha1.Node)
	return n, ok
}
