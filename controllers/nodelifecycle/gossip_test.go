package nodelifecycle

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/gossip"
)

// view is a gossip view the test sets by hand (the real membership is
// exercised by the gossip package's tests and the e2e tests).
type view struct {
	mu       sync.Mutex
	members  map[string]gossip.Member
	watchers []chan<- string
}

func (v *view) Member(name string) (gossip.Member, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	m, ok := v.members[name]
	return m, ok
}

func (v *view) Watch(ch chan<- string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.watchers = append(v.watchers, ch)
}

func (v *view) set(name string, state gossip.State, key string) {
	v.mu.Lock()
	v.members[name] = gossip.Member{Name: name, State: state, Since: time.Now(), Meta: gossip.Meta{PublicKey: key}}
	ws := v.watchers
	v.mu.Unlock()
	for _, ch := range ws {
		ch <- name
	}
}

func (h *harness) events(reason, object string) bool {
	var evs corev1.EventList
	if h.admin.List(h.ctx, &evs, client.InNamespace("default")) != nil {
		return false
	}
	return slices.ContainsFunc(evs.Items, func(ev corev1.Event) bool {
		return ev.Reason == reason && ev.InvolvedObject.Name == object
	})
}

func taintOf(n *skiffv1alpha1.Node, key string) *skiffv1alpha1.Taint {
	if i := slices.IndexFunc(n.Spec.Taints, isTaint(key)); i >= 0 {
		return &n.Spec.Taints[i]
	}
	return nil
}

func memberAlive(n *skiffv1alpha1.Node) *metav1.Condition {
	return meta.FindStatusCondition(n.Status.Conditions, skiffv1alpha1.NodeConditionMemberAlive)
}

// TestGossipDeathAndCutOff: gossip's verdicts against the Lease's. A node
// gossip declares dead whose Lease stopped is tainted dead at once, well
// inside the grace period, and its Instances with the default (300 s)
// toleration of unreachable are lost at once; a node gossip declares
// dead that still renews stays Ready; a member with a forged key is
// ignored and reported.
func TestGossipDeathAndCutOff(t *testing.T) {
	v := &view{members: map[string]gossip.Member{}}
	h := startWith(t, v)
	for _, n := range []string{"n1", "n2", "n3"} {
		h.addNode(n)
	}
	stopN1 := h.renewFor("n1", 120) // its gossip is healthy: slow renewals
	defer h.renew("n2")()
	defer h.renew("n3")()
	for _, n := range []string{"n1", "n2"} {
		v.set(n, gossip.Alive, "")
	}
	h.bind("web", "n1", ptr.To(skiffv1alpha1.DefaultTolerationSeconds))
	eventually(t, "n1 alive in gossip with MemberAlive=True and a NodeJoined event", func() bool {
		n := h.node("n1")
		c := memberAlive(n)
		return n.Status.Gossip == skiffv1alpha1.GossipAlive && c != nil && c.Status == metav1.ConditionTrue && h.events("NodeJoined", "n1")
	})

	// The machine dies: its Lease stops, gossip declares it dead.
	stopN1()
	v.set("n1", gossip.Suspect, "")
	eventually(t, "n1 suspect", func() bool {
		return h.node("n1").Status.Gossip == skiffv1alpha1.GossipSuspect && h.events("NodeSuspect", "n1")
	})
	died := time.Now()
	v.set("n1", gossip.Dead, "")
	eventually(t, "n1 tainted dead, NotReady, its Instance lost", func() bool {
		n := h.node("n1")
		return taintOf(n, skiffv1alpha1.TaintDead) != nil && readyIs(n, metav1.ConditionUnknown) && h.lost("web")
	})
	if took := time.Since(died); took >= grace {
		t.Errorf("dead node handled %s after gossip's verdict: want at once, not after the grace period %s", took, grace)
	}
	if !h.events("NodeDead", "n1") {
		t.Error("no NodeDead event")
	}
	if inst := h.instance("web"); !strings.Contains(inst.Status.Message, "is dead") {
		t.Errorf("lost Instance message %q: want the node dead", inst.Status.Message)
	}

	// Gossip dead, Lease fresh and short (the agent knows its gossip is
	// broken): the agent still talks to the API server.
	v.set("n2", gossip.Dead, "")
	eventually(t, "n2 MemberAlive=False with an event", func() bool {
		c := memberAlive(h.node("n2"))
		return c != nil && c.Status == metav1.ConditionFalse && h.events("NodeDead", "n2")
	})
	throughout(t, 2*grace, "n2 Ready and untainted while it renews", func() bool {
		n := h.node("n2")
		return readyIs(n, metav1.ConditionTrue) && taintOf(n, skiffv1alpha1.TaintDead) == nil && taintOf(n, skiffv1alpha1.TaintUnreachable) == nil
	})

	// A member named n3 announcing another key is ignored and reported.
	v.set("n3", gossip.Dead, "forged")
	eventually(t, "a GossipKeyMismatch event for n3", func() bool { return h.events(ReasonKeyMismatch, "n3") })
	if n := h.node("n3"); n.Status.Gossip != "" || taintOf(n, skiffv1alpha1.TaintDead) != nil {
		t.Errorf("n3 judged by a forged member: gossip %q, taints %v", n.Status.Gossip, n.Spec.Taints)
	}

	// n1 comes back: renewing and alive again, both taints go.
	defer h.renew("n1")()
	v.set("n1", gossip.Alive, "")
	eventually(t, "n1 untainted and recovered", func() bool {
		n := h.node("n1")
		return taintOf(n, skiffv1alpha1.TaintDead) == nil && n.Status.Gossip == skiffv1alpha1.GossipAlive && h.events("NodeRecovered", "n1")
	})
}
