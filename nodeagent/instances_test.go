package nodeagent

import (
	"context"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/apiserver/apiservertest"
	cruntime "skiff.dev/skiff/nodeagent/runtime"
)

// TestInstanceLifecycleOnSim binds an Instance to an agent's node and
// follows it to Running and through a graceful delete.
func TestInstanceLifecycleOnSim(t *testing.T) {
	s := apiservertest.Start(t)
	a, _ := runAgent(t, testConfig(s, t.TempDir(), "n1"))
	admin := adminClient(t, s, a)
	ctx := context.Background()
	eventually(t, "node n1", func() bool { return admin.Get(ctx, client.ObjectKey{Name: "n1"}, &skiffv1alpha1.Node{}) == nil })

	inst := boundInstance("web", "n1")
	inst.Spec.Containers = append(inst.Spec.Containers, skiffv1alpha1.Container{Name: "sidecar", Image: "busybox:1.36"})
	inst.Spec.TerminationGracePeriodSeconds = ptr.To[int64](1)
	createBound(t, admin, inst, "n1")
	var got skiffv1alpha1.Instance
	eventually(t, "instance Running and Ready", func() bool {
		return admin.Get(ctx, client.ObjectKeyFromObject(inst), &got) == nil &&
			got.Status.Phase == skiffv1alpha1.InstanceRunning &&
			meta.IsStatusConditionTrue(got.Status.Conditions, skiffv1alpha1.InstanceReady)
	})
	if !controllerutil.ContainsFinalizer(&got, skiffv1alpha1.AgentFinalizer) {
		t.Errorf("finalizers %v, want %s", got.Finalizers, skiffv1alpha1.AgentFinalizer)
	}
	if len(got.Status.ContainerStatuses) != 2 || got.Status.StartTime == nil {
		t.Fatalf("status %+v", got.Status)
	}
	for _, cs := range got.Status.ContainerStatuses {
		if cs.State.Running == nil || !cs.Ready || cs.ContainerID == "" {
			t.Errorf("container %q status %+v, want running", cs.Name, cs)
		}
	}
	list, _ := a.rt.List(ctx)
	if len(list) != 2 {
		t.Fatalf("runtime holds %d containers, want 2", len(list))
	}

	deleteAndWaitGone(t, admin, a, &got)
}

// TestAgentHoldsInstancesCreatedOnItsNode: an Instance created with
// spec.nodeName set (no bind, so no finalizer from the API) gets the agent
// finalizer from the agent itself before it runs, and its delete still
// waits for the agent to stop its containers.
func TestAgentHoldsInstancesCreatedOnItsNode(t *testing.T) {
	s := apiservertest.Start(t)
	a, _ := runAgent(t, testConfig(s, t.TempDir(), "n1"))
	admin := adminClient(t, s, a)
	ctx := context.Background()
	eventually(t, "node n1", func() bool { return admin.Get(ctx, client.ObjectKey{Name: "n1"}, &skiffv1alpha1.Node{}) == nil })

	inst := boundInstance("placed", "n1")
	inst.Spec.NodeName = "n1"
	if err := admin.Create(ctx, inst); err != nil {
		t.Fatal(err)
	}
	if len(inst.Finalizers) != 0 {
		t.Fatalf("finalizers %v at create, want none", inst.Finalizers)
	}
	var got skiffv1alpha1.Instance
	eventually(t, "instance Running with the agent finalizer", func() bool {
		return admin.Get(ctx, client.ObjectKeyFromObject(inst), &got) == nil &&
			got.Status.Phase == skiffv1alpha1.InstanceRunning &&
			controllerutil.ContainsFinalizer(&got, skiffv1alpha1.AgentFinalizer)
	})
	deleteAndWaitGone(t, admin, a, &got)
}

// deleteAndWaitGone deletes inst and waits until the agent has let it go,
// its containers removed.
func deleteAndWaitGone(t *testing.T, admin client.Client, a *Agent, inst *skiffv1alpha1.Instance) {
	t.Helper()
	ctx := context.Background()
	if err := admin.Delete(ctx, inst); err != nil {
		t.Fatal(err)
	}
	eventually(t, "instance gone after the agent released it", func() bool {
		return apierrors.IsNotFound(admin.Get(ctx, client.ObjectKeyFromObject(inst), &skiffv1alpha1.Instance{}))
	})
	if list, _ := a.rt.List(ctx); len(list) != 0 {
		t.Errorf("runtime still holds %d containers after delete", len(list))
	}
}

// TestRestartPolicies drives exits through the simulated runtime's
// SKIFF_SIM_EXIT_CODE and checks phase, exit codes, restarts and back-off.
func TestRestartPolicies(t *testing.T) {
	s := apiservertest.Start(t)
	cfg := testConfig(s, t.TempDir(), "n1")
	cfg.Backoff = Backoff{Base: 200 * time.Millisecond, Max: time.Second}
	a, _ := runAgent(t, cfg)
	admin := adminClient(t, s, a)
	ctx := context.Background()
	eventually(t, "node n1", func() bool { return admin.Get(ctx, client.ObjectKey{Name: "n1"}, &skiffv1alpha1.Node{}) == nil })

	start := func(name string, policy skiffv1alpha1.RestartPolicy, code string) *skiffv1alpha1.Instance {
		inst := boundInstance(name, "n1")
		inst.Spec.RestartPolicy = policy
		inst.Spec.Containers[0].Env = []skiffv1alpha1.EnvVar{{Name: cruntime.SimExitCodeEnv, Value: code}}
		createBound(t, admin, inst, "n1")
		return inst
	}
	never := start("never", skiffv1alpha1.RestartPolicyNever, "3")
	onFailure := start("on-failure-ok", skiffv1alpha1.RestartPolicyOnFailure, "0")
	always := start("always", skiffv1alpha1.RestartPolicyAlways, "1")

	var got skiffv1alpha1.Instance
	eventually(t, "restartPolicy Never, exit 3: Failed", func() bool {
		return admin.Get(ctx, client.ObjectKeyFromObject(never), &got) == nil && got.Status.Phase == skiffv1alpha1.InstanceFailed
	})
	if cs := got.Status.ContainerStatuses[0]; cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 3 || cs.RestartCount != 0 {
		t.Errorf("never: container status %+v, want terminated with 3 and no restarts", cs)
	}
	eventually(t, "restartPolicy OnFailure, exit 0: Succeeded", func() bool {
		return admin.Get(ctx, client.ObjectKeyFromObject(onFailure), &got) == nil && got.Status.Phase == skiffv1alpha1.InstanceSucceeded
	})
	sawBackOff := false
	eventually(t, "restartPolicy Always: restarts with back-off", func() bool {
		if admin.Get(ctx, client.ObjectKeyFromObject(always), &got) != nil || len(got.Status.ContainerStatuses) == 0 {
			return false
		}
		cs := got.Status.ContainerStatuses[0]
		if w := cs.State.Waiting; w != nil && w.Reason == "CrashLoopBackOff" {
			sawBackOff = true
		}
		return sawBackOff && cs.RestartCount >= 2
	})
	if last := got.Status.ContainerStatuses[0].LastTerminationState.Terminated; last == nil || last.ExitCode == 0 {
		t.Errorf("crash-looping instance: lastState %+v, want the previous run's non-zero exit", got.Status.ContainerStatuses[0].LastTerminationState)
	}
	if got.Status.Phase != skiffv1alpha1.InstanceRunning || meta.IsStatusConditionTrue(got.Status.Conditions, skiffv1alpha1.InstanceReady) {
		t.Errorf("crash-looping instance: phase %s, Ready %v; want Running and not Ready", got.Status.Phase,
			meta.IsStatusConditionTrue(got.Status.Conditions, skiffv1alpha1.InstanceReady))
	}
}
