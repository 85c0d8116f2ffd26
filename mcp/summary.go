package mcp

import (
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/controllers/scheduler"
)

// Summaries are one line of a list each: the fields a model needs to
// decide what to look at next; full objects come only from get_* tools.

// WorkloadSummary is one Workload in a list.
type WorkloadSummary struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// Ready is ready/desired replicas.
	Ready     string   `json:"ready"`
	UpToDate  int32    `json:"upToDate"`
	Available int32    `json:"available"`
	Images    []string `json:"images,omitempty"`
	// Health is Healthy, Progressing or Degraded, with the reason.
	Health string `json:"health"`
	// state is Health's first word, for counting.
	state string
	Age   string `json:"age,omitempty"`
}

// InstanceSummary is one Instance in a list.
type InstanceSummary struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Workload  string `json:"workload,omitempty"`
	Node      string `json:"node,omitempty"`
	Phase     string `json:"phase"`
	// Ready is ready/total containers.
	Ready    string `json:"ready"`
	Restarts int32  `json:"restarts,omitempty"`
	IP       string `json:"ip,omitempty"`
	// Reason is why it is not running as it should: a waiting or
	// terminated container's reason, the scheduler's, or the phase's.
	Reason string `json:"reason,omitempty"`
	Age    string `json:"age,omitempty"`
}

// NodeSummary is one Node in a list, with its room.
type NodeSummary struct {
	Name          string   `json:"name"`
	Phase         string   `json:"phase"`
	Ready         bool     `json:"ready"`
	Unschedulable bool     `json:"unschedulable,omitempty"`
	Taints        []string `json:"taints,omitempty"`
	Instances     int      `json:"instances"`
	Resources     Room     `json:"resources"`
	Age           string   `json:"age,omitempty"`
}

// Room is a node's (or the cluster's) allocatable, requested and free
// CPU (millicores) and memory (MiB).
type Room struct {
	CPUAllocatableMilli int64 `json:"cpuAllocatableMilli"`
	CPURequestedMilli   int64 `json:"cpuRequestedMilli"`
	CPUFreeMilli        int64 `json:"cpuFreeMilli"`
	MemoryAllocatableMi int64 `json:"memoryAllocatableMi"`
	MemoryRequestedMi   int64 `json:"memoryRequestedMi"`
	MemoryFreeMi        int64 `json:"memoryFreeMi"`
}

func (r *Room) add(o Room) {
	r.CPUAllocatableMilli += o.CPUAllocatableMilli
	r.CPURequestedMilli += o.CPURequestedMilli
	r.CPUFreeMilli += o.CPUFreeMilli
	r.MemoryAllocatableMi += o.MemoryAllocatableMi
	r.MemoryRequestedMi += o.MemoryRequestedMi
	r.MemoryFreeMi += o.MemoryFreeMi
}

// EventSummary is one Event. Its message is the cluster's data, not an
// instruction.
type EventSummary struct {
	Type     string `json:"type"`
	Reason   string `json:"reason"`
	Object   string `json:"object"`
	Message  string `json:"message"`
	Count    int32  `json:"count,omitempty"`
	LastSeen string `json:"lastSeen,omitempty"`
}

func age(t metav1.Time, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

func summarizeWorkload(w *skiffv1alpha1.Workload, now time.Time) WorkloadSummary {
	desired := int32(1)
	if w.Spec.Replicas != nil {
		desired = *w.Spec.Replicas
	}
	s := WorkloadSummary{
		Name: w.Name, Namespace: w.Namespace,
		Ready:    fmt.Sprintf("%d/%d", w.Status.ReadyReplicas, desired),
		UpToDate: w.Status.UpdatedReplicas, Available: w.Status.AvailableReplicas,
		Age: age(w.CreationTimestamp, now),
	}
	var detail string
	s.state, detail = workloadHealth(w, desired)
	s.Health = s.state
	if detail != "" {
		s.Health += ": " + detail
	}
	for _, c := range w.Spec.Template.Spec.Containers {
		s.Images = append(s.Images, c.Image)
	}
	return s
}

// workloadHealth is Healthy when every replica is available and the
// rollout done, Degraded (with the reason) when the rollout stalled or
// replicas are missing, Progressing otherwise.
func workloadHealth(w *skiffv1alpha1.Workload, desired int32) (state, detail string) {
	if w.Status.ObservedGeneration < w.Generation {
		return progressing, "not yet observed by the controller"
	}
	for _, cond := range []string{skiffv1alpha1.WorkloadProgressing, skiffv1alpha1.WorkloadAvailable} {
		if c := meta.FindStatusCondition(w.Status.Conditions, cond); c != nil && c.Status == metav1.ConditionFalse {
			return degraded, c.Reason + ": " + c.Message
		}
	}
	if w.Status.AvailableReplicas >= desired && w.Status.UpdatedReplicas >= desired && w.Status.Replicas == desired {
		return healthy, ""
	}
	return progressing, fmt.Sprintf("%d of %d available, %d up to date", w.Status.AvailableReplicas, desired, w.Status.UpdatedReplicas)
}

// A Workload's health states.
const (
	healthy     = "Healthy"
	progressing = "Progressing"
	degraded    = "Degraded"
)

func summarizeInstance(i *skiffv1alpha1.Instance, now time.Time) InstanceSummary {
	s := InstanceSummary{
		Name: i.Name, Namespace: i.Namespace, Node: i.Spec.NodeName,
		Phase: string(i.Status.Phase), IP: i.Status.InstanceIP, Age: age(i.CreationTimestamp, now),
	}
	if s.Phase == "" {
		s.Phase = string(skiffv1alpha1.InstancePending)
	}
	if ref := metav1.GetControllerOf(i); ref != nil {
		s.Workload = ref.Name
	}
	ready := 0
	for _, cs := range i.Status.ContainerStatuses {
		if cs.Ready {
			ready++
		}
		s.Restarts += cs.RestartCount
		switch {
		case s.Reason != "":
		case cs.State.Waiting != nil && cs.State.Waiting.Reason != "":
			s.Reason = withMessage(cs.State.Waiting.Reason, cs.State.Waiting.Message)
		case cs.State.Terminated != nil && cs.State.Terminated.Reason != "" && i.Status.Phase != skiffv1alpha1.InstanceSucceeded:
			s.Reason = withMessage(cs.State.Terminated.Reason, cs.State.Terminated.Message)
		}
	}
	s.Ready = fmt.Sprintf("%d/%d", ready, len(i.Spec.Containers))
	if c := meta.FindStatusCondition(i.Status.Conditions, skiffv1alpha1.InstanceScheduled); c != nil && c.Status == metav1.ConditionFalse {
		s.Reason = withMessage(c.Reason, c.Message)
	} else if s.Reason == "" {
		s.Reason = i.Status.Reason
	}
	if i.DeletionTimestamp != nil {
		s.Phase = "Terminating"
	}
	return s
}

// maxReasonBytes caps a reason's message in a summary.
const maxReasonBytes = 200

func withMessage(reason, message string) string {
	if message == "" {
		return reason
	}
	return reason + ": " + truncate(message, maxReasonBytes)
}

// nodeUsage sums what the unfinished Instances bound to each node request.
type nodeUsage struct {
	cpuMilli  int64
	memory    int64
	instances int
}

func usageByNode(instances []skiffv1alpha1.Instance) map[string]*nodeUsage {
	out := map[string]*nodeUsage{}
	for i := range instances {
		inst := &instances[i]
		if inst.Spec.NodeName == "" || inst.Finished() {
			continue
		}
		u := out[inst.Spec.NodeName]
		if u == nil {
			u = &nodeUsage{}
			out[inst.Spec.NodeName] = u
		}
		req := scheduler.Requests(inst)
		u.cpuMilli += req.Cpu().MilliValue()
		u.memory += req.Memory().Value()
		u.instances++
	}
	return out
}

func summarizeNode(n *skiffv1alpha1.Node, u *nodeUsage, now time.Time) NodeSummary {
	if u == nil {
		u = &nodeUsage{}
	}
	s := NodeSummary{
		Name: n.Name, Phase: string(n.Status.Phase), Unschedulable: n.Spec.Unschedulable,
		Ready:     meta.IsStatusConditionTrue(n.Status.Conditions, skiffv1alpha1.NodeConditionReady),
		Instances: u.instances, Age: age(n.CreationTimestamp, now),
	}
	for _, t := range n.Spec.Taints {
		s.Taints = append(s.Taints, taintString(t))
	}
	alloc := n.Status.Allocatable
	s.Resources = Room{
		CPUAllocatableMilli: alloc.Cpu().MilliValue(), CPURequestedMilli: u.cpuMilli,
		MemoryAllocatableMi: alloc.Memory().Value() >> 20, MemoryRequestedMi: u.memory >> 20,
	}
	s.Resources.CPUFreeMilli = max(0, s.Resources.CPUAllocatableMilli-s.Resources.CPURequestedMilli)
	s.Resources.MemoryFreeMi = max(0, s.Resources.MemoryAllocatableMi-s.Resources.MemoryRequestedMi)
	return s
}

func taintString(t skiffv1alpha1.Taint) string {
	if t.Value == "" {
		return t.Key + ":" + string(t.Effect)
	}
	return t.Key + "=" + t.Value + ":" + string(t.Effect)
}

// maxMessageBytes caps one event message in a list.
const maxMessageBytes = 512

func summarizeEvent(e *corev1.Event, now time.Time) EventSummary {
	last := e.LastTimestamp
	if last.IsZero() {
		last = metav1.Time{Time: e.EventTime.Time}
	}
	if last.IsZero() {
		last = e.CreationTimestamp
	}
	return EventSummary{
		Type: e.Type, Reason: e.Reason, Object: e.InvolvedObject.Kind + "/" + e.InvolvedObject.Name,
		Message: truncate(e.Message, maxMessageBytes), Count: e.Count, LastSeen: age(last, now),
	}
}

// eventTime is when an event last happened.
func eventTime(e *corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}

// sortEvents puts warnings first, then the newest first.
func sortEvents(events []corev1.Event) {
	sort.SliceStable(events, func(a, b int) bool {
		wa, wb := events[a].Type == corev1.EventTypeWarning, events[b].Type == corev1.EventTypeWarning
		if wa != wb {
			return wa
		}
		return eventTime(&events[a]).After(eventTime(&events[b]))
	})
}

// truncate cuts s to at most n bytes on a rune boundary, saying so.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return strings.TrimRight(s[:cut], " ") + " …[cut]"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
