package nodeagent

import (
	"sync"
	"time"
)

// pullFailures remembers failed pulls per container for the back-off.
type pullFailures struct {
	mu sync.Mutex
	m  map[string]pullFailure
}

type pullFailure struct {
	count   int32
	message string
	retryAt time.Time
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
	f.retryAt = time.Now().Add(b.Delay(f.count))
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

func (p *pullFailures) clear(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, id)
}
