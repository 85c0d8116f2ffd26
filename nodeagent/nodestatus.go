package nodeagent

import (
	"context"
	"fmt"
	"time"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// reportStatus writes capacity, allocatable, addresses, software, and the
// Ready condition.
func (a *Agent) reportStatus(ctx context.Context, c client.Client, m *Machine) error {
	// The control plane writes the Node too (its subnet, taints): a
	// conflict reads it again.
	return retry.RetryOnConflict(retry.DefaultRetry, func() error { return a.writeStatus(ctx, c, m) })
}

func (a *Agent) writeStatus(ctx context.Context, c client.Client, m *Machine) error {
	var node skiffv1alpha1.Node
	if err := c.Get(ctx, client.ObjectKey{Name: a.cfg.NodeName}, &node); err != nil {
		return fmt.Errorf("node %q: %w", a.cfg.NodeName, err)
	}
	before := node.Status.DeepCopy()
	node.Status.Capacity = m.Capacity
	node.Status.Allocatable = allocatable(m.Capacity, a.cfg.Reserved)
	node.Status.Addresses = m.Addresses
	node.Status.NodeInfo = m.Info
	node.Status.AgentEndpoint = m.Endpoint
	node.Status.GossipAddress = m.GossipAddress
	node.Status.Phase = skiffv1alpha1.NodeReady
	meta.SetStatusCondition(&node.Status.Conditions, metav1.Condition{
		Type: skiffv1alpha1.NodeConditionReady, Status: metav1.ConditionTrue,
		Reason: "AgentReady", Message: "the agent is running and renewing its lease",
	})
	if c := oomCondition(m.OOMFloor); c != nil {
		meta.SetStatusCondition(&node.Status.Conditions, *c)
	} else {
		meta.RemoveStatusCondition(&node.Status.Conditions, skiffv1alpha1.NodeConditionOOMScoreLimited)
	}
	if apiequality.Semantic.DeepEqual(before, &node.Status) {
		// Every agent watches every Node (for routes): a write that
		// changes nothing would still reach all of them.
		return nil
	}
	if err := c.Status().Update(ctx, &node); err != nil {
		return fmt.Errorf("node %q status: %w", a.cfg.NodeName, err)
	}
	return nil
}

// readyLost reports whether the Node, as the cache last saw it, no longer
// says Ready: the node lifecycle controller marks a node whose Lease went
// unrenewed Unknown, and leaves it to the agent to say Ready again. A Node
// the cache cannot show within a lease interval (not synced yet) counts
// as Ready: the status written at start said so.
func (a *Agent) readyLost(ctx context.Context, c client.Reader) bool {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.LeaseInterval)
	defer cancel()
	var node skiffv1alpha1.Node
	if err := c.Get(ctx, client.ObjectKey{Name: a.cfg.NodeName}, &node); err != nil {
		return false
	}
	return !nodeReady(&node.Status)
}

// nodeReady reports whether the status says what the agent writes while
// it runs: phase Ready and Ready=True.
func nodeReady(s *skiffv1alpha1.NodeStatus) bool {
	return s.Phase == skiffv1alpha1.NodeReady && meta.IsStatusConditionTrue(s.Conditions, skiffv1alpha1.NodeConditionReady)
}

// statusReporter writes the Node status every interval, and at once when
// kicked (the node lifecycle controller gave the node up and the agent is
// back), a Runnable of the agent's manager.
type statusReporter struct {
	interval time.Duration
	report   func(ctx context.Context) error
	kick     chan struct{}
}

func newStatusReporter(interval time.Duration, report func(ctx context.Context) error) *statusReporter {
	return &statusReporter{interval: interval, report: report, kick: make(chan struct{}, 1)}
}

// Kick asks for a write now.
func (s *statusReporter) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *statusReporter) Start(ctx context.Context) error {
	tick := time.NewTicker(s.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-s.kick:
		}
		if err := s.report(ctx); err != nil && ctx.Err() == nil {
			klog.ErrorS(err, "report node status")
		}
	}
}
