package scheduler

import (
	"cmp"
	"slices"

	corev1 "k8s.io/api/core/v1"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// amounts are resource quantities in milli-units (validation bounds every
// quantity to an int64 of them), so that the hot path adds and compares
// integers, not resource.Quantity values. cpu, memory and instance slots
// are fields; other resources (skiff.dev/gpu) are kept by name.
type amounts struct {
	cpu, memory, pods int64
	hasCPU, hasMemory bool
	hasPods           bool
	other             map[corev1.ResourceName]int64
}

// get returns the amount of a resource and whether it is set.
func (a *amounts) get(name corev1.ResourceName) (int64, bool) {
	switch name {
	case corev1.ResourceCPU:
		return a.cpu, a.hasCPU
	case corev1.ResourceMemory:
		return a.memory, a.hasMemory
	case corev1.ResourcePods:
		return a.pods, a.hasPods
	}
	v, ok := a.other[name]
	return v, ok
}

// add adds v of a resource.
func (a *amounts) add(name corev1.ResourceName, v int64) {
	switch name {
	case corev1.ResourceCPU:
		a.cpu += v
		a.hasCPU = true
	case corev1.ResourceMemory:
		a.memory += v
		a.hasMemory = true
	case corev1.ResourcePods:
		a.pods += v
		a.hasPods = true
	default:
		if a.other == nil {
			a.other = map[corev1.ResourceName]int64{}
		}
		a.other[name] += v
	}
}

// addList adds a resource list.
func (a *amounts) addList(l corev1.ResourceList) {
	for name, q := range l {
		a.add(name, q.MilliValue())
	}
}

// fromList sets a to a resource list.
func (a *amounts) fromList(l corev1.ResourceList) {
	*a = amounts{}
	a.addList(l)
}

// request is one resource an Instance asks for, in milli-units.
type request struct {
	name   corev1.ResourceName
	amount int64
}

// requestsOf lists the non-zero requests of inst by resource name (so
// that the first insufficient resource named is always the same).
func requestsOf(inst *skiffv1alpha1.Instance) []request {
	req := Requests(inst)
	out := make([]request, 0, len(req))
	for name, q := range req {
		if !q.IsZero() {
			out = append(out, request{name, q.MilliValue()})
		}
	}
	slices.SortFunc(out, func(a, b request) int { return cmp.Compare(a.name, b.name) })
	return out
}
