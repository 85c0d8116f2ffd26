package nodeagent

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/apiserver/apiservertest"
)

func TestEndedByController(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status skiffv1alpha1.InstanceStatus
		want   bool
	}{
		{"running", skiffv1alpha1.InstanceStatus{Phase: skiffv1alpha1.InstanceRunning}, false},
		{"failed by its containers", skiffv1alpha1.InstanceStatus{Phase: skiffv1alpha1.InstanceFailed}, false},
		{"succeeded", skiffv1alpha1.InstanceStatus{Phase: skiffv1alpha1.InstanceSucceeded}, false},
		{"node lost", skiffv1alpha1.InstanceStatus{Phase: skiffv1alpha1.InstanceFailed, Reason: skiffv1alpha1.ReasonNodeLost}, true},
		{"preempted", skiffv1alpha1.InstanceStatus{Phase: skiffv1alpha1.InstanceFailed, Reason: skiffv1alpha1.ReasonPreempted}, true},
	} {
		if got := endedByController(&tc.status); got != tc.want {
			t.Errorf("%s: endedByController = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestInstanceEndedByControllerIsStopped: an Instance the node lifecycle
// controller marked lost (and the workload controller replaced) while the
// agent was cut off is stopped when the agent sees it, its status is left
// as the controller wrote it, and the finalizer is held until it is
// deleted.
func TestInstanceEndedByControllerIsStopped(t *testing.T) {
	s := apiservertest.Start(t)
	a, _ := runAgent(t, testConfig(s, t.TempDir(), "n1"))
	admin := adminClient(t, s, a)
	ctx := context.Background()
	eventually(t, "node n1", func() bool { return admin.Get(ctx, client.ObjectKey{Name: "n1"}, &skiffv1alpha1.Node{}) == nil })

	inst := boundInstance("web", "n1")
	inst.Spec.TerminationGracePeriodSeconds = ptr.To[int64](1)
	createBound(t, admin, inst, "n1")
	var got skiffv1alpha1.Instance
	eventually(t, "instance Running", func() bool {
		return admin.Get(ctx, client.ObjectKeyFromObject(inst), &got) == nil && got.Status.Phase == skiffv1alpha1.InstanceRunning
	})

	// What the node lifecycle controller writes.
	got.Status.Phase, got.Status.Reason, got.Status.Message = skiffv1alpha1.InstanceFailed, skiffv1alpha1.ReasonNodeLost, `node "n1" is unreachable`
	meta.SetStatusCondition(&got.Status.Conditions, metav1.Condition{
		Type: skiffv1alpha1.InstanceReady, Status: metav1.ConditionFalse, Reason: skiffv1alpha1.ReasonNodeLost, Message: got.Status.Message,
	})
	if err := admin.Status().Update(ctx, &got); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the lost instance's containers stopped and removed", func() bool {
		list, err := a.rt.List(ctx)
		return err == nil && len(list) == 0
	})
	if err := admin.Get(ctx, client.ObjectKeyFromObject(inst), &got); err != nil {
		t.Fatal(err)
	}
	if got.Status.Phase != skiffv1alpha1.InstanceFailed || got.Status.Reason != skiffv1alpha1.ReasonNodeLost ||
		meta.IsStatusConditionTrue(got.Status.Conditions, skiffv1alpha1.InstanceReady) {
		t.Errorf("status %+v: want the controller's Failed/NodeLost kept", got.Status)
	}
	if !controllerutil.ContainsFinalizer(&got, skiffv1alpha1.AgentFinalizer) {
		t.Errorf("finalizers %v: the agent holds %s until the instance is deleted", got.Finalizers, skiffv1alpha1.AgentFinalizer)
	}

	// A later pass (any change sends one) neither restarts nor rewrites
	// it: watched for well over a pass, the containers stay gone and the
	// controller's verdict stays.
	got.Annotations = map[string]string{"touched": "yes"}
	if err := admin.Update(ctx, &got); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		var now skiffv1alpha1.Instance
		if err := admin.Get(ctx, client.ObjectKeyFromObject(inst), &now); err != nil {
			t.Fatal(err)
		}
		list, _ := a.rt.List(ctx)
		if len(list) != 0 || now.Status.Phase != skiffv1alpha1.InstanceFailed || now.Status.Reason != skiffv1alpha1.ReasonNodeLost {
			t.Fatalf("after a later pass: %d containers, phase %s reason %q", len(list), now.Status.Phase, now.Status.Reason)
		}
	}
	deleteAndWaitGone(t, admin, a, &got)
}

// TestAgentSaysReadyAgain: once the node lifecycle controller marked the
// node Unknown, the agent, renewing again, writes Ready=True at its next
// lease renewal, not at its next status tick.
func TestAgentSaysReadyAgain(t *testing.T) {
	s := apiservertest.Start(t)
	cfg := testConfig(s, t.TempDir(), "n1")
	cfg.StatusInterval = time.Hour
	a, _ := runAgent(t, cfg)
	admin := adminClient(t, s, a)
	ctx := context.Background()
	var node skiffv1alpha1.Node
	eventually(t, "node n1 Ready", func() bool {
		return admin.Get(ctx, client.ObjectKey{Name: "n1"}, &node) == nil && nodeReady(&node.Status)
	})

	// What the node lifecycle controller writes.
	node.Status.Phase = skiffv1alpha1.NodeNotReady
	meta.SetStatusCondition(&node.Status.Conditions, metav1.Condition{
		Type: skiffv1alpha1.NodeConditionReady, Status: metav1.ConditionUnknown, Reason: "NodeStatusUnknown", Message: "not seen for 15s",
	})
	if err := admin.Status().Update(ctx, &node); err != nil {
		t.Fatal(err)
	}
	eventually(t, "node n1 Ready again", func() bool {
		return admin.Get(ctx, client.ObjectKey{Name: "n1"}, &node) == nil && nodeReady(&node.Status)
	})
}
