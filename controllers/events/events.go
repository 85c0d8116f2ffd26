package events

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
)

// Recorder writes Events from one component.
type Recorder struct {
	Client client.Client
	// Component is the Event's source, e.g. skiff-workload-controller.
	Component string
}

// Event records an Event of type (corev1.EventTypeNormal or Warning) about
// obj. It is named as client-go names events: the object's name and a
// nanosecond time, since the apiserver's generateName rules are strict.
func (r Recorder) Event(ctx context.Context, obj client.Object, typ, reason, msg string) error {
	gvk, err := apiutil.GVKForObject(obj, r.Client.Scheme())
	if err != nil {
		return fmt.Errorf("event %s: %w", reason, err)
	}
	now := metav1.Now()
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", obj.GetName(), now.UnixNano()), Namespace: eventNamespace(obj)},
		InvolvedObject: corev1.ObjectReference{
			APIVersion: gvk.GroupVersion().String(), Kind: gvk.Kind,
			Namespace: obj.GetNamespace(), Name: obj.GetName(), UID: obj.GetUID(), ResourceVersion: obj.GetResourceVersion(),
		},
		Reason: reason, Message: msg, Type: typ, Count: 1,
		FirstTimestamp: now, LastTimestamp: now,
		Source: corev1.EventSource{Component: r.Component},
	}
	if err := r.Client.Create(ctx, ev); err != nil {
		return fmt.Errorf("event %s for %s %s/%s: %w", reason, gvk.Kind, obj.GetNamespace(), obj.GetName(), err)
	}
	return nil
}

// eventNamespace puts Events about cluster-scoped objects in default, as
// Kubernetes does.
func eventNamespace(obj client.Object) string {
	if obj.GetNamespace() == "" {
		return metav1.NamespaceDefault
	}
	return obj.GetNamespace()
}
