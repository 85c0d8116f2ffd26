package v1alpha1

import "testing"

func TestToleratesTaint(t *testing.T) {
	taint := Taint{Key: "dedicated", Value: "gpu", Effect: TaintEffectNoSchedule}
	cases := []struct {
		tol  Toleration
		want bool
	}{
		{Toleration{Key: "dedicated", Operator: TolerationOpEqual, Value: "gpu", Effect: TaintEffectNoSchedule}, true},
		{Toleration{Key: "dedicated", Operator: TolerationOpEqual, Value: "gpu"}, true},
		{Toleration{Key: "dedicated", Operator: TolerationOpEqual, Value: "cpu"}, false},
		{Toleration{Key: "dedicated", Operator: TolerationOpExists}, true},
		{Toleration{Operator: TolerationOpExists}, true},
		{Toleration{Operator: TolerationOpExists, Effect: TaintEffectNoExecute}, false},
		{Toleration{Key: "other", Operator: TolerationOpExists}, false},
	}
	for _, c := range cases {
		if got := c.tol.ToleratesTaint(&taint); got != c.want {
			t.Errorf("%+v tolerates %+v = %v, want %v", c.tol, taint, got, c.want)
		}
	}
}

func TestFinished(t *testing.T) {
	for phase, want := range map[InstancePhase]bool{InstancePending: false, InstanceRunning: false, InstanceSucceeded: true, InstanceFailed: true, InstanceUnknown: false} {
		if got := (&Instance{Status: InstanceStatus{Phase: phase}}).Finished(); got != want {
			t.Errorf("%s finished = %v, want %v", phase, got, want)
		}
	}
}
