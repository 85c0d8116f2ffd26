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

func (p *pullFailures) clear(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, id)
}
