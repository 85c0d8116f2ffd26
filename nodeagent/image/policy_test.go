package image

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
)

func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		policy   PullPolicy
		reserved bool
		stored   bool
		want     step
	}{
		{IfNotPresent, false, true, useStored},
		{IfNotPresent, false, false, fetch},
		{Always, false, true, fetch},
		{Always, false, false, fetch},
		{Never, false, true, useStored},
		{Never, false, false, failNever},
		// skiff.local: as IfNotPresent, but never contacted.
		{IfNotPresent, true, true, useStored},
		{IfNotPresent, true, false, failMissing},
		{Always, true, true, useStored},
		{Always, true, false, failMissing},
		{Never, true, true, useStored},
		{Never, true, false, failNever},
	} {
		if got := plan(tc.policy, tc.reserved, tc.stored); got != tc.want {
			t.Errorf("plan(policy %d, reserved %t, stored %t) = %d, want %d", tc.policy, tc.reserved, tc.stored, got, tc.want)
		}
	}
}

func TestReserved(t *testing.T) {
	for ref, want := range map[string]bool{
		"skiff.local/busybox:latest":   true,
		"skiff.local/busybox":          true,
		"skiff.local:5000/busybox:v2":  true,
		"busybox":                      false,
		"skiff.local.example/busybox":  false,
		"registry.skiff.local/busybox": false,
		"docker.io/skiff.local/x":      false,
	} {
		r, err := name.ParseReference(ref)
		if err != nil {
			t.Fatalf("parse %q: %v", ref, err)
		}
		if got := reserved(r); got != want {
			t.Errorf("reserved(%q) = %t, want %t", ref, got, want)
		}
	}
}
