package nodeagent

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/controllers/events"
)

// event records a Warning about inst, as the kubelet does for a Pod; a
// failure to record it is logged, never the Instance's failure.
func (r *instanceReconciler) event(ctx context.Context, inst *skiffv1alpha1.Instance, reason, msg string) {
	rec := events.Recorder{Client: r.client, Component: "skiff-agent"}
	if err := rec.Event(ctx, inst, corev1.EventTypeWarning, reason, msg); err != nil {
		klog.V(2).InfoS("event", "instance", client.ObjectKeyFromObject(inst), "reason", reason, "err", err)
	}
}
