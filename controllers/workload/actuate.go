package workload

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// DefaultConcurrency bounds the writes one reconciliation has in flight.
const DefaultConcurrency = 10

// backoff spaces the retries of one write that failed for a passing reason.
var backoff = wait.Backoff{Steps: 5, Duration: 50 * time.Millisecond, Factor: 2, Jitter: 0.2}

// Actuator is ACTUATE: it carries a plan out.
type Actuator struct {
	Client client.Client
	// Concurrency bounds the writes in flight; DefaultConcurrency if 0.
	Concurrency int
}

// Outcome is what an actuation did.
type Outcome struct {
	// Created names the Instances created.
	Created []string
	// Deleted holds the UIDs of the Instances deleted.
	Deleted []types.UID
	// Replaced counts finished Instances replaced.
	Replaced int
	// Err joins the errors of the actions that failed for good.
	Err error
}

// Actuate runs the deletions of a plan, then its creations, each at most
// Concurrency at a time, retrying writes that failed for a passing reason
// (timeouts, throttling, a name taken). A deletion whose precondition no
// longer holds (the Instance is gone or is another one) is skipped.
func (a *Actuator) Actuate(ctx context.Context, w *skiffv1alpha1.Workload, actions []Action) Outcome {
	var (
		mu   sync.Mutex
		out  Outcome
		errs []error
	)
	record := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, err)
		}
	}
	var deletes, creates []func()
	for _, act := range actions {
		if act.Instance != nil {
			deletes = append(deletes, func() {
				err := a.delete(ctx, act)
				if err == nil {
					mu.Lock()
					out.Deleted = append(out.Deleted, act.Precondition)
					if act.Type == Replace {
						out.Replaced++
					}
					mu.Unlock()
				}
				record(err)
			})
		}
		if act.Type == Create || act.Type == Replace {
			creates = append(creates, func() {
				name, err := a.create(ctx, w, act.Revision)
				if err == nil {
					mu.Lock()
					out.Created = append(out.Created, name)
					mu.Unlock()
				}
				record(err)
			})
		}
	}
	a.run(deletes)
	a.run(creates)
	out.Err = errors.Join(errs...)
	return out
}

// run runs fns with bounded concurrency and waits for all of them.
func (a *Actuator) run(fns []func()) {
	limit := a.Concurrency
	if limit <= 0 {
		limit = DefaultConcurrency
	}
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for _, fn := range fns {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn()
		}()
	}
	wg.Wait()
}

func (a *Actuator) delete(ctx context.Context, act Action) error {
	inst := act.Instance
	err := retry.OnError(backoff, transient, func() error {
		return a.Client.Delete(ctx, inst, client.Preconditions{UID: &act.Precondition},
			client.PropagationPolicy(metav1.DeletePropagationBackground))
	})
	// Gone already, or the name now belongs to another Instance: the
	// action is moot and the next reconciliation sees the truth.
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("deleting instance %q in %q: %w", inst.Name, inst.Namespace, err)
	}
	return nil
}

func (a *Actuator) create(ctx context.Context, w *skiffv1alpha1.Workload, rev string) (string, error) {
	inst := NewInstance(w, rev)
	// ambiguous: the last attempt at this name failed in a way that may
	// have stored it anyway (a timeout), so the name is retried, not redrawn.
	ambiguous := false
	err := retry.OnError(backoff, func(err error) bool { return transient(err) || apierrors.IsAlreadyExists(err) }, func() error {
		err := a.Client.Create(ctx, inst.DeepCopy())
		switch {
		case apierrors.IsAlreadyExists(err) && ambiguous:
			return nil // stored by the attempt that seemed to fail
		case apierrors.IsAlreadyExists(err):
			inst = NewInstance(w, rev) // a namesake from the random suffix
		}
		ambiguous = transient(err)
		return err
	})
	if err != nil {
		err = fmt.Errorf("workload %q in %q: creating an instance of revision %s: %w", w.Name, w.Namespace, rev, err)
		if apierrors.IsInvalid(err) || apierrors.IsForbidden(err) || apierrors.IsBadRequest(err) {
			// The template cannot make a valid Instance: retrying will not help.
			return "", reconcile.TerminalError(err)
		}
		return "", err
	}
	return inst.Name, nil
}

// transient reports whether a write may succeed if tried again.
func transient(err error) bool {
	return apierrors.IsTooManyRequests(err) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
		apierrors.IsServiceUnavailable(err) || apierrors.IsInternalError(err) ||
		utilnet.IsConnectionReset(err) || utilnet.IsConnectionRefused(err)
}

// NewInstance stamps an Instance of revision rev from w's template: named
// <workload>-<revision>-<random>, labelled with the revision, controlled
// by w.
func NewInstance(w *skiffv1alpha1.Workload, rev string) *skiffv1alpha1.Instance {
	labels := map[string]string{}
	for k, v := range w.Spec.Template.Metadata.Labels {
		labels[k] = v
	}
	labels[skiffv1alpha1.RevisionLabel] = rev
	var annotations map[string]string
	if len(w.Spec.Template.Metadata.Annotations) > 0 {
		annotations = map[string]string{}
		for k, v := range w.Spec.Template.Metadata.Annotations {
			annotations[k] = v
		}
	}
	return &skiffv1alpha1.Instance{
		ObjectMeta: metav1.ObjectMeta{
			Name:        fmt.Sprintf("%s-%s-%s", w.Name, rev, rand.String(5)),
			Namespace:   w.Namespace,
			Labels:      labels,
			Annotations: annotations,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: skiffv1alpha1.SchemeGroupVersion.String(), Kind: "Workload",
				Name: w.Name, UID: w.UID, Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
			}},
		},
		Spec: skiffv1alpha1.InstanceSpec{InstanceTemplateSpec: *w.Spec.Template.Spec.DeepCopy()},
	}
}
