package nodelifecycle

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/gossip"
)

// health is the controller's verdict on a node.
type health int

const (
	// healthy: the Lease is fresh (whatever gossip says).
	healthy health = iota
	// cutOff: the Lease is stale but gossip still reaches the node (or
	// gossip does not know it): it may only be cut off from the control
	// plane. Tainted unreachable, with its long default toleration.
	cutOff
	// dead: gossip says dead or left and the Lease was not renewed since.
	// Tainted dead: Instances without a toleration are replaced at once.
	dead
)

// Reasons of the MemberAlive condition.
const (
	ReasonMemberAlive   = "MemberAlive"
	ReasonMemberSuspect = "MemberSuspect"
	ReasonMemberDead    = "MemberDead"
	ReasonMemberLeft    = "MemberLeft"
	ReasonNotAMember    = "NotAMember"
	ReasonKeyMismatch   = "GossipKeyMismatch"
)

// signals is what the controller knows of a node at one moment.
type signals struct {
	// lease is the last sight of a Lease renewal (At zero: never; then
	// the node's registration stands in).
	lease Sighting
	// member is gossip's view, nil when gossip does not know the node (or
	// gossip is off).
	member *gossip.Member
	// keyMismatch says a member of that name announced a public key that
	// is not the Node's: it is ignored.
	keyMismatch bool
}

// verdict is judge's answer.
type verdict struct {
	health health
	// why says what the verdict rests on, for conditions and Events.
	why string
	// memberAlive is the MemberAlive condition to write.
	memberAlive metav1.Condition
	// gossip is status.gossip.
	gossip skiffv1alpha1.GossipState
	// recheck is how long until the verdict changes by itself (the Lease
	// goes stale); zero when only a new signal can change it.
	recheck time.Duration
}

// judge decides a node's health from its two signals at now. A Lease
// renewal vouches for max(grace, its leaseDurationSeconds): agents renew
// slowly while their gossip is healthy, and say so in the Lease (a
// duration above the grace period). An agent whose gossip goes unhealthy
// renews at once with a short duration: so a fresh short Lease means the
// agent knew its gossip was broken and still talks to the API server,
// and gossip's "dead" does not make it dead; a long one means gossip was
// fine until the node vanished, and "dead" is believed at once unless a
// renewal comes after it.
func judge(s signals, now time.Time, grace time.Duration) verdict {
	valid := max(grace, s.lease.For)
	staleAt := s.lease.At.Add(valid)
	fresh := now.Before(staleAt)
	gossipHealthy := s.lease.For > grace
	v := verdict{memberAlive: memberCondition(s)}
	if fresh {
		v.recheck = staleAt.Sub(now)
	}
	if s.member != nil && !s.keyMismatch {
		v.gossip = skiffv1alpha1.GossipState(s.member.State)
	}
	switch {
	case s.member != nil && !s.keyMismatch && s.member.State.Ended() && !(fresh && (s.lease.At.After(s.member.Since) || !gossipHealthy)):
		v.health = dead
		v.why = fmt.Sprintf("gossip declared it %s %s ago and its Lease was not renewed since", s.member.State, now.Sub(s.member.Since).Round(time.Second))
	case fresh:
		v.health = healthy
		if v.memberAlive.Status == metav1.ConditionFalse {
			v.memberAlive.Message += "; its agent still renews its Lease, so it stays Ready"
		}
	default:
		v.health = cutOff
		v.why = fmt.Sprintf("its Lease was not renewed for %s (valid for %s)", now.Sub(s.lease.At).Round(time.Second), valid)
		if v.gossip == skiffv1alpha1.GossipAlive || v.gossip == skiffv1alpha1.GossipSuspect {
			v.why += ", but gossip still reaches it: it is cut off from the control plane, not dead"
		}
	}
	return v
}

// memberCondition is the MemberAlive condition for s.
func memberCondition(s signals) metav1.Condition {
	c := metav1.Condition{Type: skiffv1alpha1.NodeConditionMemberAlive}
	switch {
	case s.keyMismatch:
		c.Status, c.Reason = metav1.ConditionUnknown, ReasonKeyMismatch
		c.Message = "a gossip member of this name announces a public key that is not spec.publicKey: it is ignored"
	case s.member == nil:
		c.Status, c.Reason = metav1.ConditionUnknown, ReasonNotAMember
		c.Message = "the node is not a member of the control plane's gossip cluster"
	case s.member.State == gossip.Alive:
		c.Status, c.Reason = metav1.ConditionTrue, ReasonMemberAlive
		c.Message = "gossip reaches the node"
	case s.member.State == gossip.Suspect:
		c.Status, c.Reason = metav1.ConditionUnknown, ReasonMemberSuspect
		c.Message = "a gossip probe of the node failed; it is dead unless it refutes"
	case s.member.State == gossip.Left:
		c.Status, c.Reason = metav1.ConditionFalse, ReasonMemberLeft
		c.Message = "the node left the gossip cluster"
	default:
		c.Status, c.Reason = metav1.ConditionFalse, ReasonMemberDead
		c.Message = "gossip declared the node dead"
	}
	return c
}

// gossipEvent names the Event for a change of status.gossip, or "".
func gossipEvent(from, to skiffv1alpha1.GossipState) (reason string, warning bool) {
	if from == to || to == "" {
		return "", false
	}
	switch to {
	case skiffv1alpha1.GossipAlive:
		if from == "" {
			return "NodeJoined", false
		}
		return "NodeRecovered", false
	case skiffv1alpha1.GossipSuspect:
		return "NodeSuspect", true
	case skiffv1alpha1.GossipDead:
		return "NodeDead", true
	}
	return "NodeLeft", false
}
