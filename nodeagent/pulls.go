package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/nodeagent/image"
)

// pullFailures remembers failed pulls per container for the back-off,
// and the notice (ErrImageNeverPull, missing pull Secrets) each container
// was last told of, so that its Event is recorded once, not at every try.
type pullFailures struct {
	mu      sync.Mutex
	m       map[string]pullFailure
	notices map[string]string
}

type pullFailure struct {
	count   int32
	message string
	// The failure shows as ErrImagePull until backOffAt, the first half
	// of its back-off, then as ImagePullBackOff until retryAt, when the
	// image is pulled again: as a kubelet's Pod shows ErrImagePull until
	// its next sync, not for the moment between two status writes.
	backOffAt time.Time
	retryAt   time.Time
	// backOffTold says the BackOff Event of this failure was recorded.
	backOffTold bool
}

func (p *pullFailures) get(id string) (pullFailure, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f, ok := p.m[id]
	return f, ok
}

func (p *pullFailures) fail(id, msg string, b Backoff) pullFailure {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]pullFailure{}
	}
	f := p.m[id]
	now, delay := time.Now(), b.Delay(f.count)
	f.backOffAt, f.retryAt = now.Add(delay/2), now.Add(delay)
	f.count++
	f.message = msg
	p.m[id] = f
	return f
}

// tellBackOff reports whether the BackOff Event of id's last failure is
// still to be recorded, and marks it recorded.
func (p *pullFailures) tellBackOff(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	f, ok := p.m[id]
	if !ok || f.backOffTold {
		return false
	}
	f.backOffTold = true
	p.m[id] = f
	return true
}

// tellNotice reports whether msg is new for id, and remembers it.
func (p *pullFailures) tellNotice(id, msg string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.notices == nil {
		p.notices = map[string]string{}
	}
	if p.notices[id] == msg {
		return false
	}
	p.notices[id] = msg
	return true
}

func (p *pullFailures) clear(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, id)
	delete(p.notices, id)
}

// image returns the container's image, pulled as its pull policy says
// with the Instance's pull Secrets; while it cannot be had it returns the
// waiting status instead: ErrImagePull, then ImagePullBackOff until the
// back-off ends, or ErrImageNeverPull for a missing image that may not be
// pulled (tried again after the back-off's base, as another Instance may
// pull it meanwhile).
func (r *instanceReconciler) image(ctx context.Context, inst *skiffv1alpha1.Instance, id string, c *skiffv1alpha1.Container, restarts int32) (*image.Image, *containerResult) {
	if r.images == nil {
		return nil, nil
	}
	waiting := func(reason, msg string, retryAt time.Time) *containerResult {
		cs := skiffv1alpha1.ContainerStatus{Name: c.Name, Image: c.Image, RestartCount: restarts}
		cs.State.Waiting = &skiffv1alpha1.ContainerStateWaiting{Reason: reason, Message: msg}
		return &containerResult{status: cs, retryAt: retryAt}
	}
	if f, ok := r.pulls.get(id); ok && time.Now().Before(f.retryAt) {
		if time.Now().Before(f.backOffAt) {
			return nil, waiting("ErrImagePull", f.message, f.backOffAt)
		}
		msg := fmt.Sprintf("Back-off pulling image %q: %s", c.Image, f.message)
		if r.pulls.tellBackOff(id) {
			r.event(ctx, inst, "BackOff", msg)
		}
		return nil, waiting("ImagePullBackOff", msg, f.retryAt)
	}
	img, err := r.ensureImage(ctx, inst, id, c)
	switch {
	case errors.Is(err, image.ErrNeverPull):
		msg := fmt.Sprintf("Container image %q is not present with pull policy of Never", c.Image)
		if r.pulls.tellNotice(id, msg) {
			r.event(ctx, inst, "ErrImageNeverPull", msg)
		}
		return nil, waiting("ErrImageNeverPull", msg, time.Now().Add(r.backoff.Base))
	case err != nil:
		f := r.pulls.fail(id, shortMessage(err), r.backoff)
		r.event(ctx, inst, "Failed", fmt.Sprintf("Failed to pull image %q: %s", c.Image, f.message))
		return nil, waiting("ErrImagePull", f.message, f.backOffAt)
	}
	r.pulls.clear(id)
	if img.PullDuration > 0 {
		r.metrics.imagePullDuration.Observe(img.PullDuration.Seconds())
	}
	return img, nil
}

// ensureImage gets c's image from the store with c's pull policy and the
// credentials of inst's pull Secrets.
func (r *instanceReconciler) ensureImage(ctx context.Context, inst *skiffv1alpha1.Instance, id string, c *skiffv1alpha1.Container) (*image.Image, error) {
	opts, err := r.pullOptions(ctx, inst, id, c)
	if err != nil {
		return nil, err
	}
	// A stalled registry must not hold a worker (and the image's lock)
	// for ever.
	pullCtx, cancel := context.WithTimeout(ctx, pullTimeout)
	defer cancel()
	return r.images.Ensure(pullCtx, c.Image, opts)
}
