package runtime_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"skiff.dev/skiff/nodeagent/runtime"
	"skiff.dev/skiff/nodeagent/runtime/runtimetest"
)

func TestSimConformance(t *testing.T) {
	runtimetest.Run(t, func(*testing.T) runtime.Runtime { return runtime.NewSim(runtime.SimConfig{}) }, runtime.Spec{Image: "busybox"})
}

func TestSimInjectsFailuresAndDelay(t *testing.T) {
	ctx := context.Background()
	failing := runtime.NewSim(runtime.SimConfig{FailureRate: 1})
	if err := failing.Create(ctx, "c", runtime.Spec{}); err != nil {
		t.Fatal(err)
	}
	if err := failing.Start(ctx, "c"); !errors.Is(err, runtime.ErrSimulatedFailure) {
		t.Fatalf("start with failure rate 1: %v", err)
	}
	slow := runtime.NewSim(runtime.SimConfig{StartDelay: 50 * time.Millisecond})
	_ = slow.Create(ctx, "c", runtime.Spec{})
	t0 := time.Now()
	if err := slow.Start(ctx, "c"); err != nil || time.Since(t0) < 50*time.Millisecond {
		t.Fatalf("start with a 50ms delay took %s: %v", time.Since(t0), err)
	}
}
