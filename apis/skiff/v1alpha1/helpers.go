package v1alpha1

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
