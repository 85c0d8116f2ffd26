package nodelifecycle

import (
	"testing"
	"time"
)

// TestLeasesObserve: a renewal counts when it is first seen, on this
// process's clock, whatever the agent's clock wrote.
func TestLeasesObserve(t *testing.T) {
	now := t0
	l := NewLeases(nil)
	l.now = func() time.Time { return now }
	skewed := t0.Add(-time.Hour) // an agent whose clock is an hour behind
	if got := l.observe("n1", skewed); !got.Equal(t0) {
		t.Errorf("first sight: %s, want now %s", got, t0)
	}
	now = t0.Add(10 * time.Second)
	if got := l.observe("n1", skewed); !got.Equal(t0) {
		t.Errorf("unchanged renewTime: %s, want the time it was first seen %s", got, t0)
	}
	if got := l.observe("n1", skewed.Add(5*time.Second)); !got.Equal(now) {
		t.Errorf("renewed: %s, want now %s", got, now)
	}
	l.forget("n1")
	now = t0.Add(20 * time.Second)
	if got := l.observe("n1", skewed.Add(5*time.Second)); !got.Equal(now) {
		t.Errorf("after forget: %s, want now %s", got, now)
	}
}
