package scheduler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// errReplaced: the Instance to evict is gone and another of the same name
// took its place.
var errReplaced = errors.New("replaced by another instance of the same name")

// noFit records why inst fits nowhere and, when evicting lower-priority
// Instances on some node makes room, nominates that node and evicts them.
// An Instance whose victims are still leaving waits for them instead of
// preempting again.
func (c *Controller) noFit(ctx context.Context, inst *skiffv1alpha1.Instance, res Result, infos []*NodeInfo) error {
	nominated := inst.Status.NominatedNodeName
	var plan Preemption
	if left := VictimsLeft(inst, infos); len(left) > 0 {
		if err := c.deleteVictims(ctx, left); err != nil { // an eviction cut short
			return err
		}
	} else {
		plan = c.Scheduler.Preempt(inst, infos)
		nominated = plan.Node
	}
	// The nomination is written before any victim is touched, so that the
	// room they free is reserved for inst (Reserve) by the time they are
	// gone, not taken by whichever pending Instance looks first.
	err := c.unschedulable(ctx, inst, res.Message(len(infos)), res.Failures(), nominated)
	if apierrors.IsNotFound(err) {
		return nil // deleted meanwhile: nothing to place, no one to evict for
	}
	if err != nil || plan.Node == "" {
		return err
	}
	return c.preempt(ctx, inst, plan)
}

// unschedulable writes the no-fit verdict to inst's status, with an Event
// once per distinct message.
func (c *Controller) unschedulable(ctx context.Context, inst *skiffv1alpha1.Instance, msg string, failures []skiffv1alpha1.NodeSchedulingFailure, nominated string) error {
	cond := meta.FindStatusCondition(inst.Status.Conditions, skiffv1alpha1.InstanceScheduled)
	sameVerdict := cond != nil && cond.Status == metav1.ConditionFalse && cond.Message == msg
	if sameVerdict && slices.Equal(failures, inst.Status.SchedulingFailures) && nominated == inst.Status.NominatedNodeName {
		return nil
	}
	meta.SetStatusCondition(&inst.Status.Conditions, metav1.Condition{
		Type: skiffv1alpha1.InstanceScheduled, Status: metav1.ConditionFalse, Reason: "Unschedulable",
		Message: msg, ObservedGeneration: inst.Generation,
	})
	inst.Status.SchedulingFailures, inst.Status.NominatedNodeName = failures, nominated
	if err := c.Client.Status().Update(ctx, inst); err != nil {
		return fmt.Errorf("record instance %s/%s unschedulable: %w", inst.Namespace, inst.Name, err)
	}
	if sameVerdict {
		return nil
	}
	return c.event(ctx, inst, corev1.EventTypeWarning, "FailedScheduling", msg)
}

// preempt evicts the plan's victims for inst.
func (c *Controller) preempt(ctx context.Context, inst *skiffv1alpha1.Instance, plan Preemption) error {
	names := make([]string, len(plan.Victims))
	for i, v := range plan.Victims {
		if err := c.evict(ctx, v, inst); err != nil {
			return err
		}
		names[i] = v.Namespace + "/" + v.Name
	}
	return c.event(ctx, inst, corev1.EventTypeNormal, "Preempting",
		fmt.Sprintf("Preempted %s on node %s to make room", strings.Join(names, ", "), plan.Node))
}

// evict ends victim for by: Failed, reason Preempted, not Ready, then
// deleted. The node agent's finalizer keeps the object, and so its room
// (see finished), until its containers have stopped.
func (c *Controller) evict(ctx context.Context, victim, by *skiffv1alpha1.Instance) error {
	msg := fmt.Sprintf("Preempted by %s/%s (priority %d) on node %s", by.Namespace, by.Name, Priority(by), victim.Spec.NodeName)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var cur skiffv1alpha1.Instance
		if err := c.Client.Get(ctx, key(victim), &cur); err != nil {
			return err
		}
		if cur.UID != victim.UID {
			return errReplaced
		}
		if cur.Status.Reason == skiffv1alpha1.ReasonPreempted {
			return nil
		}
		cur.Status.Phase, cur.Status.Reason, cur.Status.Message = skiffv1alpha1.InstanceFailed, skiffv1alpha1.ReasonPreempted, msg
		meta.SetStatusCondition(&cur.Status.Conditions, metav1.Condition{
			Type: skiffv1alpha1.InstanceReady, Status: metav1.ConditionFalse, Reason: skiffv1alpha1.ReasonPreempted,
			Message: msg, ObservedGeneration: cur.Generation,
		})
		return c.Client.Status().Update(ctx, &cur)
	})
	if apierrors.IsNotFound(err) || errors.Is(err, errReplaced) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("preempt instance %s/%s: %w", victim.Namespace, victim.Name, err)
	}
	if err := c.deleteVictims(ctx, []*skiffv1alpha1.Instance{victim}); err != nil {
		return err
	}
	return c.event(ctx, victim, corev1.EventTypeNormal, skiffv1alpha1.ReasonPreempted, msg)
}

// deleteVictims deletes the preempted Instances not yet being deleted.
func (c *Controller) deleteVictims(ctx context.Context, victims []*skiffv1alpha1.Instance) error {
	for _, v := range victims {
		if v.DeletionTimestamp != nil {
			continue
		}
		err := c.Client.Delete(ctx, v, client.Preconditions{UID: &v.UID})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			continue // gone, or replaced by another of the same name
		}
		if err != nil {
			return fmt.Errorf("delete preempted instance %s/%s: %w", v.Namespace, v.Name, err)
		}
	}
	return nil
}
