package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MarkNodeLost ends the Instance's status: Failed, NodeLost, not Ready,
// with msg. The node lifecycle controller writes it for a lost node, and
// an agent that fenced its node for what it stopped; the agent, should
// the node come back, stops such an Instance and leaves the status alone.
func (i *Instance) MarkNodeLost(msg string) {
	s := &i.Status
	s.Phase, s.Reason, s.Message = InstanceFailed, ReasonNodeLost, msg
	meta.SetStatusCondition(&s.Conditions, metav1.Condition{
		Type: InstanceReady, Status: metav1.ConditionFalse,
		Reason: ReasonNodeLost, Message: msg, ObservedGeneration: i.Generation,
	})
}

// Finished reports whether the Instance is done for good: Succeeded or
// Failed.
func (i *Instance) Finished() bool {
	return i.Status.Phase == InstanceSucceeded || i.Status.Phase == InstanceFailed
}

// ToleratesTaint reports whether the toleration matches the taint, as
// Kubernetes matches them: an empty effect matches every effect, Exists
// with an empty key every key, and Exists ignores the value.
func (t *Toleration) ToleratesTaint(taint *Taint) bool {
	if t.Effect != "" && t.Effect != taint.Effect {
		return false
	}
	if t.Operator == TolerationOpExists {
		return t.Key == "" || t.Key == taint.Key
	}
	return t.Key == taint.Key && t.Value == taint.Value
}
