package apiserver

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/admission"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/identity"
)

// nodeRestriction is the part of the node restriction that needs the
// objects: a node writes only Instances bound to it (their status, and
// the agent finalizer in their metadata) and only its own Lease; the join
// token creates a Node only with a key and sets the key only of a Node that
// has none.
type nodeRestriction struct {
	// trust answers whether a key already belongs to someone.
	trust *identity.Trust
	// claims holds the keys registrations took and the trust has not
	// learnt yet (it learns them by watching Nodes, a moment later).
	claims *keyClaims
	// instances reads Instances, for the Events a node records about
	// them; set once the storage is built.
	instances *instanceGetter
}

// instanceGetter reads Instances from their storage, filled in after
// the admission chain is made.
type instanceGetter struct {
	getter rest.Getter
}

func (g *instanceGetter) get(ctx context.Context, namespace, name string) (*skiffv1alpha1.Instance, error) {
	if g == nil || g.getter == nil {
		return nil, errors.New("instances are not readable yet")
	}
	obj, err := g.getter.Get(genericapirequest.WithNamespace(ctx, namespace), name, &metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	inst, ok := obj.(*skiffv1alpha1.Instance)
	if !ok {
		return nil, fmt.Errorf("instance %s/%s: got %T", namespace, name, obj)
	}
	return inst, nil
}

var _ admission.ValidationInterface = nodeRestriction{}

func (nodeRestriction) Handles(op admission.Operation) bool {
	return op == admission.Create || op == admission.Update
}

func (n nodeRestriction) Validate(ctx context.Context, a admission.Attributes, _ admission.ObjectInterfaces) error {
	u := a.GetUserInfo()
	if u == nil {
		return nil
	}
	var err error
	if node, ok := nodeName(u); ok {
		err = validateNodeWrite(node, a)
		if ev, isEvent := a.GetObject().(*corev1.Event); isEvent && err == nil {
			err = n.validateNodeEvent(ctx, node, ev)
		}
	} else if hasGroup(u, skiffv1alpha1.BootstrappersGroup) {
		err = n.validateBootstrapWrite(a)
	}
	if err != nil {
		return apierrors.NewForbidden(a.GetResource().GroupResource(), a.GetName(), err)
	}
	return nil
}

// validateNodeEvent lets a node record Events only about its own Node and
// the Instances bound to it, in their namespaces.
func (n nodeRestriction) validateNodeEvent(ctx context.Context, node string, ev *corev1.Event) error {
	io := ev.InvolvedObject
	switch {
	case io.Kind == "Node" && io.Name == node && io.Namespace == "":
		return nil
	case io.Kind == "Instance" && io.Namespace == ev.Namespace:
		inst, err := n.instances.get(ctx, io.Namespace, io.Name)
		if err == nil && inst.Spec.NodeName == node {
			return nil
		}
	}
	return fmt.Errorf("node %q may record events only about its own Node and the Instances bound to it, not %s %s/%s", node, io.Kind, io.Namespace, io.Name)
}

func validateNodeWrite(node string, a admission.Attributes) error {
	switch obj := a.GetObject().(type) {
	case *skiffv1alpha1.Instance:
		old, _ := a.GetOldObject().(*skiffv1alpha1.Instance)
		if old == nil || old.Spec.NodeName != node {
			return fmt.Errorf("node %q may only update instances bound to it", node)
		}
		if a.GetSubresource() == "status" {
			return nil
		}
		return onlyAgentFinalizerChanged(obj, old)
	case *coordinationv1.Lease:
		if obj.Name != node {
			return fmt.Errorf("node %q may only write its own lease, not %q", node, obj.Name)
		}
	case *skiffv1alpha1.Node:
		if obj.Name != node {
			return fmt.Errorf("node %q may only write its own Node", node)
		}
	}
	return nil
}

// onlyAgentFinalizerChanged allows a node to add or remove the agent
// finalizer and nothing else in an Instance's spec and metadata.
func onlyAgentFinalizerChanged(obj, old *skiffv1alpha1.Instance) error {
	withoutAgent := func(fs []string) []string {
		return slices.DeleteFunc(slices.Clone(fs), func(f string) bool { return f == skiffv1alpha1.AgentFinalizer })
	}
	a, b := obj.DeepCopy(), old.DeepCopy()
	a.Finalizers, b.Finalizers = withoutAgent(a.Finalizers), withoutAgent(b.Finalizers)
	a.Status, b.Status = skiffv1alpha1.InstanceStatus{}, skiffv1alpha1.InstanceStatus{}
	for _, m := range []*skiffv1alpha1.Instance{a, b} {
		m.TypeMeta = metav1.TypeMeta{} // a PUT carries apiVersion and kind; the stored object does not
		m.ResourceVersion, m.ManagedFields, m.Generation = "", nil, 0
	}
	if !apiequality.Semantic.DeepEqual(a, b) {
		return fmt.Errorf("a node may only change an instance's status and the %s finalizer", skiffv1alpha1.AgentFinalizer)
	}
	return nil
}

func (n nodeRestriction) validateBootstrapWrite(a admission.Attributes) error {
	node, ok := a.GetObject().(*skiffv1alpha1.Node)
	if !ok {
		return fmt.Errorf("the join token may only register nodes")
	}
	if node.Spec.PublicKey == "" {
		return fmt.Errorf("registering node %q needs spec.publicKey, the agent's key", node.Name)
	}
	if err := n.keyIsFree(node); err != nil {
		return err
	}
	if err := registration(node, a.GetOldObject()); err != nil {
		return err
	}
	// Two registrations with one key at once: the first claim wins, the
	// other is refused here rather than both seeing the key free. Taken
	// last, so that a registration refused for another reason holds none.
	if !n.claims.claim(node.Spec.PublicKey, node.Name, n.trust) {
		return fmt.Errorf("the key of node %q is being registered for another node", node.Name)
	}
	return nil
}

// registration checks what the join token writes: a new Node with the
// agent's labels and taints only, or a key set on a keyless Node.
func registration(node *skiffv1alpha1.Node, oldObj runtime.Object) error {
	if len(node.Finalizers) > 0 || len(node.OwnerReferences) > 0 {
		return fmt.Errorf("registering node %q: finalizers and owner references are for admins", node.Name)
	}
	old, ok := oldObj.(*skiffv1alpha1.Node)
	if !ok {
		// Create: labels and taints from the agent's flags; the subnet
		// is the control plane's to give.
		if node.Spec.InstanceCIDR != "" {
			return fmt.Errorf("registering node %q: spec.instanceCIDR is given by the control plane", node.Name)
		}
		for _, k := range slices.Sorted(maps.Keys(node.Labels)) {
			if tokenMayNotSet(k) {
				return fmt.Errorf("registering node %q: label %q is in a reserved prefix (kubernetes.io, k8s.io, skiff.dev): an admin sets it, not the join token", node.Name, k)
			}
		}
		return nil
	}
	if old.Spec.PublicKey != "" && old.Spec.PublicKey != node.Spec.PublicKey {
		return fmt.Errorf("node %q is already registered with another key; delete the Node to register it again", node.Name)
	}
	// Claiming a Node an admin created keyless sets the key and nothing else.
	a1, b := node.DeepCopy(), old.DeepCopy()
	a1.Spec.PublicKey, b.Spec.PublicKey = "", ""
	for _, m := range []*skiffv1alpha1.Node{a1, b} {
		m.TypeMeta = metav1.TypeMeta{} // a PUT carries apiVersion and kind; the stored object does not
		m.ResourceVersion, m.ManagedFields, m.Generation = "", nil, 0
		m.Status = skiffv1alpha1.NodeStatus{}
	}
	if !apiequality.Semantic.DeepEqual(a1, b) {
		return fmt.Errorf("claiming node %q with the join token may only set spec.publicKey", node.Name)
	}
	return nil
}

// keyIsFree refuses a key that is already some principal's.
func (n nodeRestriction) keyIsFree(node *skiffv1alpha1.Node) error {
	key, err := identity.ParsePublicKey(node.Spec.PublicKey)
	if err != nil {
		return nil // validation reports the malformed key
	}
	if p, taken := n.trust.Lookup(key); taken && p.Name != skiffv1alpha1.NodeUserPrefix+node.Name {
		return fmt.Errorf("the key of node %q already belongs to another identity", node.Name)
	}
	return nil
}

// nodeSelfLabels are the labels under reserved prefixes that a node may
// give itself, as a kubelet may: facts about its machine.
var nodeSelfLabels = map[string]bool{
	"kubernetes.io/hostname": true, "kubernetes.io/arch": true, "kubernetes.io/os": true,
	"topology.kubernetes.io/region": true, "topology.kubernetes.io/zone": true, "node.kubernetes.io/instance-type": true,
}

// tokenMayNotSet reports a label the join token may not put on a Node it
// registers: one in the kubernetes.io, k8s.io or skiff.dev namespaces
// (node-role.kubernetes.io/, say), which schedulers and admins trust,
// other than the machine facts of nodeSelfLabels and the kubelet's own
// kubelet.kubernetes.io/ and node.kubernetes.io/ namespaces (Kubernetes'
// NodeRestriction rule).
func tokenMayNotSet(key string) bool {
	prefix, _, ok := strings.Cut(key, "/")
	if !ok || nodeSelfLabels[key] || prefix == "kubelet.kubernetes.io" || prefix == "node.kubernetes.io" {
		return false
	}
	for _, d := range []string{"kubernetes.io", "k8s.io", "skiff.dev"} {
		if prefix == d || strings.HasSuffix(prefix, "."+d) {
			return true
		}
	}
	return false
}

// keyClaims reserves registered keys until the trust knows them: the
// trust is filled from a watch of Nodes, so two registrations in the same
// moment would both find a key free. A claim lasts claimTTL at most.
type keyClaims struct {
	mu sync.Mutex
	m  map[string]keyClaim
}

type keyClaim struct {
	node string
	at   time.Time
}

const claimTTL = time.Minute

func newKeyClaims() *keyClaims { return &keyClaims{m: map[string]keyClaim{}} }

// claim reserves key for node, unless another node holds a live claim on
// it; claims the trust has learnt, and old ones, are dropped on the way.
func (c *keyClaims) claim(key, node string, trust *identity.Trust) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	for k, cl := range c.m {
		pub, err := identity.ParsePublicKey(k)
		if now.Sub(cl.at) > claimTTL || err != nil {
			delete(c.m, k)
		} else if _, known := trust.Lookup(pub); known {
			delete(c.m, k)
		}
	}
	if cl, ok := c.m[key]; ok && cl.node != node {
		return false
	}
	c.m[key] = keyClaim{node: node, at: now}
	return true
}
