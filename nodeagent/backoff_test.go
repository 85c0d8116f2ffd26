package nodeagent

import (
	"testing"
	"time"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

func TestBackoffDoublesToMax(t *testing.T) {
	b := DefaultBackoff
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 5 * time.Minute, 5 * time.Minute}
	for restarts, w := range want {
		if got := b.Delay(int32(restarts)); got != w {
			t.Errorf("Delay(%d) = %s, want %s", restarts, got, w)
		}
	}
	if got := b.Delay(1000); got != 5*time.Minute {
		t.Errorf("Delay(1000) = %s, want the 5m cap", got)
	}
	t0 := time.Unix(1000, 0)
	if got := b.restartAt(t0, 1); !got.Equal(t0.Add(20 * time.Second)) {
		t.Errorf("restartAt = %s", got)
	}
}

func TestShouldRestart(t *testing.T) {
	cases := []struct {
		policy skiffv1alpha1.RestartPolicy
		code   int
		want   bool
	}{
		{skiffv1alpha1.RestartPolicyAlways, 0, true},
		{skiffv1alpha1.RestartPolicyAlways, 1, true},
		{skiffv1alpha1.RestartPolicyOnFailure, 0, false},
		{skiffv1alpha1.RestartPolicyOnFailure, 137, true},
		{skiffv1alpha1.RestartPolicyNever, 1, false},
		{"", 0, true},
	}
	for _, tc := range cases {
		if got := shouldRestart(tc.policy, tc.code); got != tc.want {
			t.Errorf("shouldRestart(%q, %d) = %v, want %v", tc.policy, tc.code, got, tc.want)
		}
	}
}
