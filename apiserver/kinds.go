package apiserver

import (
	"context"
	"fmt"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// Kinds is the resource table: every resource the server serves, in one
// place. The registry builder reads nothing else.
func Kinds() []*Kind {
	return []*Kind{
		workloadKind(), instanceKind(), nodeKind(), namespaceKind(), eventKind(), leaseKind(),
		secretKind(), configMapKind(),
		roleKind(), clusterRoleKind(), roleBindingKind(), clusterRoleBindingKind(),
	}
}

// The resources other parts of the server read, by name.
var (
	nodesResource      = skiffv1alpha1.Resource("nodes")
	instancesResource  = skiffv1alpha1.Resource("instances")
	namespacesResource = corev1.Resource("namespaces")
)

func workloadKind() *Kind {
	return &Kind{
		GVK:    skiffv1alpha1.SchemeGroupVersion.WithKind("Workload"),
		Plural: "workloads", Singular: "workload", ShortNames: []string{"wl"}, Categories: []string{"all", "skiff"},
		Namespaced: true, KeepsNamespace: true,
		New:     func() runtime.Object { return &skiffv1alpha1.Workload{} },
		NewList: func() runtime.Object { return &skiffv1alpha1.WorkloadList{} },
		Status:  true,
		Scale: &ScaleAccess{
			SpecReplicasPath: []string{"spec", "replicas"},
			Get: func(obj runtime.Object) (int32, int32, string, error) {
				return workloadScale(obj.(*skiffv1alpha1.Workload))
			},
			Set: func(obj runtime.Object, n int32) {
				obj.(*skiffv1alpha1.Workload).Spec.Replicas = &n
			},
		},
		Columns: []metav1.TableColumnDefinition{
			col("Desired", "integer", "Replicas wanted."),
			col("Ready", "integer", "Replicas ready."),
			col("Up-to-date", "integer", "Replicas of the current template."),
			col("Available", "integer", "Replicas available."),
			ageColumn,
			wide(col("Images", "string", "Images of the template's containers.")),
			wide(col("Selector", "string", "Label selector of the owned Instances.")),
		},
		Row:                  typed(workloadRow),
		Validate:             typed(skiffv1alpha1.ValidateWorkload),
		ValidateUpdate:       typed2(skiffv1alpha1.ValidateWorkloadUpdate),
		ValidateStatusUpdate: typed2(skiffv1alpha1.ValidateWorkloadStatusUpdate),
	}
}

func workloadScale(w *skiffv1alpha1.Workload) (int32, int32, string, error) {
	var spec int32 = 1
	if w.Spec.Replicas != nil {
		spec = *w.Spec.Replicas
	}
	sel, err := metav1.LabelSelectorAsSelector(w.Spec.Selector)
	if err != nil {
		return 0, 0, "", fmt.Errorf("workload %q selector: %w", w.Name, err)
	}
	return spec, w.Status.Replicas, sel.String(), nil
}

func workloadRow(w *skiffv1alpha1.Workload) []interface{} {
	spec, _, selector, _ := workloadScale(w)
	images := make([]string, 0, len(w.Spec.Template.Spec.Containers))
	for _, c := range w.Spec.Template.Spec.Containers {
		images = append(images, c.Image)
	}
	return []interface{}{
		int64(spec), int64(w.Status.ReadyReplicas), int64(w.Status.UpdatedReplicas), int64(w.Status.AvailableReplicas),
		age(w.CreationTimestamp), strings.Join(images, ","), orNone(selector),
	}
}

func instanceKind() *Kind {
	return &Kind{
		GVK:    skiffv1alpha1.SchemeGroupVersion.WithKind("Instance"),
		Plural: "instances", Singular: "instance", ShortNames: []string{"inst"}, Categories: []string{"all", "skiff"},
		Namespaced: true, KeepsNamespace: true,
		New:     func() runtime.Object { return &skiffv1alpha1.Instance{} },
		NewList: func() runtime.Object { return &skiffv1alpha1.InstanceList{} },
		Status:  true,
		Binding: true,
		Subresources: map[string]func(SubresourceEnv) rest.Storage{
			"log": func(env SubresourceEnv) rest.Storage {
				return &logREST{instances: env.Main, nodes: env.Store(nodesResource), cert: env.AgentCert}
			},
			"exec": func(env SubresourceEnv) rest.Storage {
				return &execREST{instances: env.Main, nodes: env.Store(nodesResource), cert: env.AgentCert}
			},
		},
		Columns: []metav1.TableColumnDefinition{
			col("Status", "string", "Terminating, the reason a container waits or ended (ErrImagePull, CrashLoopBackOff, ...), or the phase."),
			col("Node", "string", "Node the Instance is bound to."),
			col("Restarts", "integer", "Container restarts."),
			ageColumn,
			wide(col("IP", "string", "The Instance's address.")),
			wide(col("QoS", "string", "Quality-of-service class.")),
		},
		Row:         typed(instanceRow),
		FieldLabels: skiffv1alpha1.InstanceFieldLabels,
		Fields: typed(func(i *skiffv1alpha1.Instance) fields.Set {
			return fields.Set{"spec.nodeName": i.Spec.NodeName, "status.phase": string(i.Status.Phase)}
		}),
		IndexField: "spec.nodeName",
		PrepareForCreate: mutate(func(i *skiffv1alpha1.Instance) {
			i.Status.Phase = skiffv1alpha1.InstancePending
			i.Status.QOSClass = skiffv1alpha1.ComputeQOSClass(&i.Spec.InstanceTemplateSpec)
			dropControllersManagedFields(i)
		}),
		Validate:             typed(skiffv1alpha1.ValidateInstance),
		ValidateUpdate:       typed2(skiffv1alpha1.ValidateInstanceUpdate),
		ValidateStatusUpdate: typed2(skiffv1alpha1.ValidateInstanceStatusUpdate),
	}
}

// dropControllersManagedFields stores an Instance a controller makes (a
// Workload's, with a controller ownerReference) without managed fields,
// unless it was made by server-side apply. Its fields are its
// controller's by construction, and the record of it was two-fifths of
// a Running Instance's size and cost about a fifth of the control
// plane's CPU through a burst of 10,000 Instances (the agent's status
// write compared both whole objects to track its own few fields; step 17
// in docs/performance.md). As for any object
// stored without them, writes that are not applies then track nothing;
// the first server-side apply gives every field already set to the
// manager "before-first-apply" and tracks from there on.
func dropControllersManagedFields(i *skiffv1alpha1.Instance) {
	if !controllerMade(i) {
		return
	}
	for _, e := range i.ManagedFields {
		if e.Operation == metav1.ManagedFieldsOperationApply {
			return
		}
	}
	i.ManagedFields = nil
}

// controllerMade reports whether a controller made i (it has a controller
// ownerReference): its managed fields are not kept, here and in the
// creates that do not work them out (unrecorded.go).
func controllerMade(i *skiffv1alpha1.Instance) bool {
	return metav1.GetControllerOf(i) != nil
}

func instanceRow(i *skiffv1alpha1.Instance) []interface{} {
	var restarts int64
	for _, c := range i.Status.ContainerStatuses {
		restarts += int64(c.RestartCount)
	}
	return []interface{}{
		instanceStatus(i), orNone(i.Spec.NodeName), restarts, age(i.CreationTimestamp),
		orNone(i.Status.InstanceIP), orNone(string(i.Status.QOSClass)),
	}
}

// instanceStatus is the STATUS column, as kubectl shows a Pod's: the
// phase, or the Instance's reason (NodeLost), or the reason of a container
// that waits or ended (the last such container's), Terminating once it is
// being deleted.
func instanceStatus(i *skiffv1alpha1.Instance) string {
	if i.DeletionTimestamp != nil {
		return "Terminating"
	}
	if i.Status.Reason != "" {
		return i.Status.Reason
	}
	if init, initializing := initStatus(i); initializing {
		return init
	}
	status, running := string(i.Status.Phase), false
	for k := len(i.Status.ContainerStatuses) - 1; k >= 0; k-- {
		switch st := i.Status.ContainerStatuses[k].State; {
		case st.Waiting != nil && st.Waiting.Reason != "":
			return st.Waiting.Reason
		case st.Terminated != nil && st.Terminated.Reason != "":
			status = st.Terminated.Reason
		case st.Running != nil:
			running = true
		}
	}
	if status == "Completed" && running {
		return string(skiffv1alpha1.InstanceRunning) // a sidecar's peer finished
	}
	return orNone(status)
}

// initStatus is the STATUS column while init containers run, as kubectl
// shows a Pod's: Init:N/M (N of M done), or Init: and the reason one waits
// or failed (Init:CrashLoopBackOff, Init:Error).
func initStatus(i *skiffv1alpha1.Instance) (string, bool) {
	total := len(i.Spec.InitContainers)
	if total == 0 {
		return "", false
	}
	done := 0
	for _, cs := range i.Status.InitContainerStatuses {
		switch st := cs.State; {
		case st.Terminated != nil && st.Terminated.ExitCode == 0:
			done++
		case st.Terminated != nil && st.Terminated.Reason != "":
			return "Init:" + st.Terminated.Reason, true
		case st.Terminated != nil:
			return fmt.Sprintf("Init:ExitCode:%d", st.Terminated.ExitCode), true
		case st.Waiting != nil && st.Waiting.Reason != "" && st.Waiting.Reason != "PodInitializing":
			return "Init:" + st.Waiting.Reason, true
		}
	}
	if done == total {
		return "", false
	}
	return fmt.Sprintf("Init:%d/%d", done, total), true
}

func nodeKind() *Kind {
	return &Kind{
		GVK:    skiffv1alpha1.SchemeGroupVersion.WithKind("Node"),
		Plural: "nodes", Singular: "node", ShortNames: []string{"no"}, Categories: []string{"skiff"},
		New:     func() runtime.Object { return &skiffv1alpha1.Node{} },
		NewList: func() runtime.Object { return &skiffv1alpha1.NodeList{} },
		Status:  true,
		Subresources: map[string]func(SubresourceEnv) rest.Storage{
			"metrics": func(env SubresourceEnv) rest.Storage {
				return &nodeMetricsREST{nodes: env.Main, cert: env.AgentCert}
			},
		},
		Columns: []metav1.TableColumnDefinition{
			col("Phase", "string", "Ready, NotReady, Unknown or Down."),
			col("CPU", "string", "Allocatable CPU."),
			col("Memory", "string", "Allocatable memory."),
			ageColumn,
			wide(col("Version", "string", "Agent version.")),
			wide(col("Runtime", "string", "OCI runtime and version.")),
			wide(col("Address", "string", "First address.")),
			wide(col("CIDR", "string", "spec.instanceCIDR: the subnet the Node's Instances get addresses from.")),
			wide(col("Gossip", "string", "status.gossip: alive, suspect, dead or left, as the control plane's gossip member sees the node.")),
		},
		Row:                  typed(nodeRow),
		Validate:             typed(skiffv1alpha1.ValidateNode),
		ValidateUpdate:       typed2(skiffv1alpha1.ValidateNodeUpdate),
		ValidateStatusUpdate: typed2(skiffv1alpha1.ValidateNodeStatusUpdate),
		Redact:               redactNodeKey,
	}
}

// redactNodeKey withholds other Nodes' public keys from a node: an agent
// needs its peers' addresses and subnets, not their identities. A node
// sees its own key (it checks its registration by it); everyone else
// sees every key.
func redactNodeKey(ctx context.Context, obj runtime.Object) runtime.Object {
	n, ok := obj.(*skiffv1alpha1.Node)
	if !ok || n.Spec.PublicKey == "" {
		return obj
	}
	u, _ := genericapirequest.UserFrom(ctx)
	if self, isNode := nodeName(u); !isNode || self == n.Name {
		return obj
	}
	n = n.DeepCopy()
	n.Spec.PublicKey = ""
	return n
}

func nodeRow(n *skiffv1alpha1.Node) []interface{} {
	cpu, hasCPU := n.Status.Allocatable[corev1.ResourceCPU]
	mem, hasMem := n.Status.Allocatable[corev1.ResourceMemory]
	runtimeName := n.Status.NodeInfo.RuntimeName
	if v := n.Status.NodeInfo.RuntimeVersion; v != "" {
		runtimeName += " " + v
	}
	address := ""
	if len(n.Status.Addresses) > 0 {
		address = n.Status.Addresses[0].Address
	}
	return []interface{}{
		orNone(string(n.Status.Phase)), quantityString(&cpu, hasCPU), quantityString(&mem, hasMem),
		age(n.CreationTimestamp), orNone(n.Status.NodeInfo.AgentVersion), orNone(runtimeName), orNone(address),
		orNone(n.Spec.InstanceCIDR), orNone(string(n.Status.Gossip)),
	}
}

// Namespaces that always exist and cannot be deleted.
const (
	DefaultNamespace = "default"
	SystemNamespace  = "skiff-system"
)

func namespaceKind() *Kind {
	return &Kind{
		GVK:    corev1.SchemeGroupVersion.WithKind("Namespace"),
		Plural: "namespaces", Singular: "namespace", ShortNames: []string{"ns"},
		Namespaces: true,
		New:        func() runtime.Object { return &corev1.Namespace{} },
		NewList:    func() runtime.Object { return &corev1.NamespaceList{} },
		Columns:    []metav1.TableColumnDefinition{col("Status", "string", "Namespace phase."), ageColumn},
		Row: typed(func(ns *corev1.Namespace) []interface{} {
			return []interface{}{string(ns.Status.Phase), age(ns.CreationTimestamp)}
		}),
		FieldLabels: []string{"status.phase"},
		Fields: typed(func(ns *corev1.Namespace) fields.Set {
			return fields.Set{"status.phase": string(ns.Status.Phase)}
		}),
		PrepareForCreate: mutate(func(ns *corev1.Namespace) {
			ns.Status = corev1.NamespaceStatus{Phase: corev1.NamespaceActive}
		}),
		Validate: typed(func(ns *corev1.Namespace) field.ErrorList {
			return validation.ValidateObjectMeta(&ns.ObjectMeta, false, validation.ValidateNamespaceName, field.NewPath("metadata"))
		}),
		Protected: []string{DefaultNamespace, SystemNamespace, skiffv1alpha1.NodeLeaseNamespace},
	}
}

func eventKind() *Kind {
	return &Kind{
		GVK:    corev1.SchemeGroupVersion.WithKind("Event"),
		Plural: "events", Singular: "event", ShortNames: []string{"ev"},
		Namespaced: true,
		TTL:        time.Hour,
		New:        func() runtime.Object { return &corev1.Event{} },
		NewList:    func() runtime.Object { return &corev1.EventList{} },
		Columns: []metav1.TableColumnDefinition{
			col("Type", "string", "Normal or Warning."),
			col("Reason", "string", "Why the event happened."),
			col("Object", "string", "The object the event is about."),
			col("Message", "string", "What happened."),
			ageColumn,
		},
		Row: typed(func(e *corev1.Event) []interface{} {
			obj := strings.ToLower(e.InvolvedObject.Kind) + "/" + e.InvolvedObject.Name
			return []interface{}{e.Type, e.Reason, obj, e.Message, age(e.CreationTimestamp)}
		}),
		FieldLabels: eventFieldLabels,
		Fields:      typed(eventFields),
	}
}

// eventFieldLabels are the Event field selectors; kubectl describe
// selects events by involvedObject.
var eventFieldLabels = []string{
	"involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
	"involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
	"involvedObject.fieldPath", "reason", "reportingComponent", "source", "type",
}

func eventFields(e *corev1.Event) fields.Set {
	source := e.Source.Component
	if source == "" {
		source = e.ReportingController
	}
	return fields.Set{
		"involvedObject.kind":            e.InvolvedObject.Kind,
		"involvedObject.namespace":       e.InvolvedObject.Namespace,
		"involvedObject.name":            e.InvolvedObject.Name,
		"involvedObject.uid":             string(e.InvolvedObject.UID),
		"involvedObject.apiVersion":      e.InvolvedObject.APIVersion,
		"involvedObject.resourceVersion": e.InvolvedObject.ResourceVersion,
		"involvedObject.fieldPath":       e.InvolvedObject.FieldPath,
		"reason":                         e.Reason,
		"reportingComponent":             e.ReportingController,
		"source":                         source,
		"type":                           e.Type,
	}
}

func leaseKind() *Kind {
	return &Kind{
		GVK:    coordinationv1.SchemeGroupVersion.WithKind("Lease"),
		Plural: "leases", Singular: "lease",
		Namespaced: true, KeepsNamespace: true,
		New:     func() runtime.Object { return &coordinationv1.Lease{} },
		NewList: func() runtime.Object { return &coordinationv1.LeaseList{} },
		Columns: []metav1.TableColumnDefinition{col("Holder", "string", "Current holder."), ageColumn},
		Row: typed(func(l *coordinationv1.Lease) []interface{} {
			holder := ""
			if l.Spec.HolderIdentity != nil {
				holder = *l.Spec.HolderIdentity
			}
			return []interface{}{holder, age(l.CreationTimestamp)}
		}),
	}
}
