package nodelifecycle

import (
	"context"
	"errors"
	"testing"
	"time"
)

// seenAt is a Liveness answering from a map.
type seenAt map[string]time.Time

func (s seenAt) LastSeen(_ context.Context, node string) (time.Time, error) { return s[node], nil }

type broken struct{ err error }

func (b broken) LastSeen(context.Context, string) (time.Time, error) { return time.Time{}, b.err }

func TestNewest(t *testing.T) {
	lease := seenAt{"a": t0, "b": t0.Add(-time.Minute)}
	gossip := seenAt{"b": t0.Add(-time.Second), "c": t0}
	ctx := context.Background()
	for node, want := range map[string]time.Time{"a": t0, "b": t0.Add(-time.Second), "c": t0, "d": {}} {
		if got, err := (Newest{lease, gossip}).LastSeen(ctx, node); err != nil || !got.Equal(want) {
			t.Errorf("node %s: %s, %v; want %s", node, got, err, want)
		}
	}
	errDown := errors.New("down")
	if _, err := (Newest{lease, broken{errDown}}).LastSeen(ctx, "a"); !errors.Is(err, errDown) {
		t.Errorf("a failing signal: %v, want its error (no verdict on part of the evidence)", err)
	}
}

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
