package nodelifecycle

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
	"skiff.dev/skiff/gossip"
)

// TestJudge is the decision table: every Lease state (fresh, stale, fresh
// only by its own longer duration, renewed after gossip's verdict or not)
// against every gossip state (none, alive, suspect, dead, left, a forged
// key).
func TestJudge(t *testing.T) {
	const grace = 15 * time.Second
	now := t0
	lease := func(ago time.Duration, valid time.Duration) Sighting { return Sighting{At: now.Add(-ago), For: valid} }
	member := func(state gossip.State, ago time.Duration) *gossip.Member {
		return &gossip.Member{Name: "n1", State: state, Since: now.Add(-ago)}
	}
	for _, tc := range []struct {
		name        string
		sig         signals
		want        health
		wantGossip  skiffv1alpha1.GossipState
		wantMember  metav1.ConditionStatus
		wantReason  string
		wantRecheck time.Duration
	}{
		// No gossip: the Lease alone, as before gossip.
		{"no gossip, lease fresh", signals{lease: lease(5*time.Second, 0)}, healthy, "", metav1.ConditionUnknown, ReasonNotAMember, 10 * time.Second},
		{"no gossip, lease stale", signals{lease: lease(20*time.Second, 0)}, cutOff, "", metav1.ConditionUnknown, ReasonNotAMember, 0},
		{"no gossip, never renewed", signals{}, cutOff, "", metav1.ConditionUnknown, ReasonNotAMember, 0},
		// Gossip alive: a stale Lease means cut off from the control plane.
		{"alive, lease fresh", signals{lease: lease(time.Second, 0), member: member(gossip.Alive, time.Minute)}, healthy, "alive", metav1.ConditionTrue, ReasonMemberAlive, 14 * time.Second},
		{"alive, lease stale", signals{lease: lease(time.Minute, 0), member: member(gossip.Alive, time.Minute)}, cutOff, "alive", metav1.ConditionTrue, ReasonMemberAlive, 0},
		{"alive, slow renewals vouch for 120 s", signals{lease: lease(time.Minute, 120*time.Second), member: member(gossip.Alive, time.Hour)}, healthy, "alive", metav1.ConditionTrue, ReasonMemberAlive, time.Minute},
		{"alive, slow renewal overdue", signals{lease: lease(121*time.Second, 120*time.Second), member: member(gossip.Alive, time.Hour)}, cutOff, "alive", metav1.ConditionTrue, ReasonMemberAlive, 0},
		// Suspect is not dead yet.
		{"suspect, lease fresh", signals{lease: lease(time.Second, 0), member: member(gossip.Suspect, time.Second)}, healthy, "suspect", metav1.ConditionUnknown, ReasonMemberSuspect, 14 * time.Second},
		{"suspect, lease stale", signals{lease: lease(time.Minute, 0), member: member(gossip.Suspect, time.Second)}, cutOff, "suspect", metav1.ConditionUnknown, ReasonMemberSuspect, 0},
		// Dead: at once unless the Lease was renewed after the verdict.
		{"dead, slow lease renewed before", signals{lease: lease(3*time.Second, 120*time.Second), member: member(gossip.Dead, time.Second)}, dead, "dead", metav1.ConditionFalse, ReasonMemberDead, 117 * time.Second},
		{"dead, short lease (the agent knew its gossip was broken) renewed before", signals{lease: lease(3*time.Second, 15*time.Second), member: member(gossip.Dead, time.Second)}, healthy, "dead", metav1.ConditionFalse, ReasonMemberDead, 12 * time.Second},
		{"dead, short lease gone stale", signals{lease: lease(16*time.Second, 15*time.Second), member: member(gossip.Dead, time.Second)}, dead, "dead", metav1.ConditionFalse, ReasonMemberDead, 0},
		{"dead, lease renewed after", signals{lease: lease(time.Second, 0), member: member(gossip.Dead, 3*time.Second)}, healthy, "dead", metav1.ConditionFalse, ReasonMemberDead, 14 * time.Second},
		{"dead, renewed after but stale since", signals{lease: lease(20*time.Second, 0), member: member(gossip.Dead, 30*time.Second)}, dead, "dead", metav1.ConditionFalse, ReasonMemberDead, 0},
		{"dead, lease stale", signals{lease: lease(time.Minute, 0), member: member(gossip.Dead, time.Second)}, dead, "dead", metav1.ConditionFalse, ReasonMemberDead, 0},
		{"dead, slow renewal before the death", signals{lease: lease(10*time.Second, 120*time.Second), member: member(gossip.Dead, time.Second)}, dead, "dead", metav1.ConditionFalse, ReasonMemberDead, 110 * time.Second},
		{"left, slow lease from before", signals{lease: lease(2*time.Second, 120*time.Second), member: member(gossip.Left, time.Second)}, dead, "left", metav1.ConditionFalse, ReasonMemberLeft, 118 * time.Second},
		{"left, renewed after", signals{lease: lease(time.Second, 0), member: member(gossip.Left, 2*time.Second)}, healthy, "left", metav1.ConditionFalse, ReasonMemberLeft, 14 * time.Second},
		// A member with another key is ignored: the Lease alone decides.
		{"forged key says dead, lease fresh", signals{lease: lease(time.Second, 0), member: nil, keyMismatch: true}, healthy, "", metav1.ConditionUnknown, ReasonKeyMismatch, 14 * time.Second},
		{"forged key, lease stale", signals{lease: lease(time.Minute, 0), keyMismatch: true}, cutOff, "", metav1.ConditionUnknown, ReasonKeyMismatch, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := judge(tc.sig, now, grace)
			if v.health != tc.want || v.gossip != tc.wantGossip || v.memberAlive.Status != tc.wantMember || v.memberAlive.Reason != tc.wantReason || v.recheck != tc.wantRecheck {
				t.Errorf("judge = health %d, gossip %q, MemberAlive %s/%s, recheck %s; want %d, %q, %s/%s, %s",
					v.health, v.gossip, v.memberAlive.Status, v.memberAlive.Reason, v.recheck, tc.want, tc.wantGossip, tc.wantMember, tc.wantReason, tc.wantRecheck)
			}
			if tc.want != healthy && v.why == "" {
				t.Error("a verdict against the node says nothing of why")
			}
		})
	}
	v := judge(signals{lease: lease(time.Minute, 0), member: member(gossip.Alive, time.Hour)}, now, grace)
	if !strings.Contains(v.why, "cut off from the control plane, not dead") {
		t.Errorf("cut off while gossip reaches it: %q", v.why)
	}
	v = judge(signals{lease: lease(time.Second, 0), member: member(gossip.Dead, 3*time.Second)}, now, grace)
	if v.health != healthy {
		t.Fatal("renewed after gossip's verdict: not healthy")
	}
	if !strings.Contains(v.memberAlive.Message, "stays Ready") {
		t.Errorf("dead by gossip, renewing: MemberAlive message %q", v.memberAlive.Message)
	}
}

func TestGossipEvents(t *testing.T) {
	for _, tc := range []struct {
		from, to skiffv1alpha1.GossipState
		want     string
	}{
		{"", "alive", "NodeJoined"}, {"suspect", "alive", "NodeRecovered"}, {"dead", "alive", "NodeRecovered"},
		{"alive", "suspect", "NodeSuspect"}, {"suspect", "dead", "NodeDead"}, {"alive", "left", "NodeLeft"},
		{"alive", "alive", ""}, {"alive", "", ""},
	} {
		if got, _ := gossipEvent(tc.from, tc.to); got != tc.want {
			t.Errorf("%q -> %q: %q, want %q", tc.from, tc.to, got, tc.want)
		}
	}
}
