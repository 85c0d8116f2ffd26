package nodeipam

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func newAllocator(t *testing.T, cidr string, mask int) *Allocator {
	t.Helper()
	a, err := NewAllocator(Config{ClusterCIDR: cidr, NodeCIDRMaskSize: mask})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func allocate(t *testing.T, a *Allocator, node string) string {
	t.Helper()
	p, err := a.Allocate(node)
	if err != nil {
		t.Fatalf("allocate for %s: %v", node, err)
	}
	return p.String()
}

func TestAllocatorLowestFree(t *testing.T) {
	a := newAllocator(t, "10.88.0.0/16", 24)
	for i, want := range []string{"10.88.0.0/24", "10.88.1.0/24", "10.88.2.0/24"} {
		if got := allocate(t, a, fmt.Sprintf("n%d", i)); got != want {
			t.Errorf("allocation %d: %s, want %s", i, got, want)
		}
	}
	if got := allocate(t, a, "n1"); got != "10.88.1.0/24" {
		t.Errorf("a node asking again got %s, want the subnet it holds, 10.88.1.0/24", got)
	}
	if a.Free() != 253 {
		t.Errorf("%d free, want 253", a.Free())
	}
}

func TestAllocatorExhaustionReleaseReuse(t *testing.T) {
	a := newAllocator(t, "10.0.0.0/23", 25) // four subnets
	for i := range 4 {
		allocate(t, a, fmt.Sprintf("n%d", i))
	}
	if _, err := a.Allocate("n4"); !errors.Is(err, ErrFull) {
		t.Fatalf("fifth allocation: %v, want ErrFull", err)
	}
	a.Release("n2")
	a.Release("n1")
	if got := allocate(t, a, "n4"); got != "10.0.0.128/25" {
		t.Errorf("after releases: %s, want the lowest freed, 10.0.0.128/25", got)
	}
	if got := allocate(t, a, "n5"); got != "10.0.1.0/25" {
		t.Errorf("next: %s, want 10.0.1.0/25", got)
	}
	if _, err := a.Allocate("n6"); !errors.Is(err, ErrFull) {
		t.Errorf("full again: %v, want ErrFull", err)
	}
	a.Release("unknown") // nothing held: nothing happens
	if a.Free() != 0 {
		t.Errorf("%d free, want 0", a.Free())
	}
}

// TestAllocatorManySubnets crosses bitmap words and a partial last one.
func TestAllocatorManySubnets(t *testing.T) {
	a := newAllocator(t, "10.0.0.0/8", 24)
	seen := map[string]bool{}
	for i := range 5000 {
		p := allocate(t, a, fmt.Sprintf("n%d", i))
		if seen[p] {
			t.Fatalf("%s given twice", p)
		}
		seen[p] = true
	}
	a.Release("n4999")
	a.Release("n70")
	if got := allocate(t, a, "x"); got != "10.0.70.0/24" {
		t.Errorf("got %s, want the lowest released, 10.0.70.0/24", got)
	}
	small := newAllocator(t, "10.0.0.0/22", 29) // 128 subnets: two full words
	for i := range 128 {
		allocate(t, small, fmt.Sprintf("n%d", i))
	}
	if _, err := small.Allocate("more"); !errors.Is(err, ErrFull) {
		t.Errorf("129th of 128: %v, want ErrFull", err)
	}
	odd := newAllocator(t, "10.0.0.0/24", 29) // 32 subnets: half a word
	for i := range 32 {
		allocate(t, odd, fmt.Sprintf("n%d", i))
	}
	if p, err := odd.Allocate("more"); !errors.Is(err, ErrFull) {
		t.Errorf("33rd of 32: %v %v, want ErrFull", p, err)
	}
}

// TestAllocatorRebuild: what Nodes already hold is never handed out,
// whether the allocator gave it or an admin wrote it, and whatever its
// size; what lies outside the cluster CIDR uses nothing.
func TestAllocatorRebuild(t *testing.T) {
	a := newAllocator(t, "10.88.0.0/16", 24)
	a.Occupy("given", netip.MustParsePrefix("10.88.0.0/24"))
	a.Occupy("admin-wide", netip.MustParsePrefix("10.88.2.0/23"))    // two subnets
	a.Occupy("admin-narrow", netip.MustParsePrefix("10.88.1.64/26")) // part of one
	a.Occupy("elsewhere", netip.MustParsePrefix("192.168.7.0/24"))
	want := []string{"10.88.4.0/24", "10.88.5.0/24"}
	for i, w := range want {
		if got := allocate(t, a, fmt.Sprintf("new-%d", i)); got != w {
			t.Errorf("allocation %d: %s, want %s", i, got, w)
		}
	}
	if a.Free() != 256-6 {
		t.Errorf("%d free, want %d", a.Free(), 256-6)
	}
	a.Release("elsewhere")
	if a.Free() != 256-6 {
		t.Errorf("releasing a CIDR outside the cluster freed something: %d free", a.Free())
	}
	a.Release("admin-narrow")
	if got := allocate(t, a, "new-2"); got != "10.88.1.0/24" {
		t.Errorf("after the narrow one left: %s, want 10.88.1.0/24", got)
	}
}

// TestAllocatorOverlapsStayUsed: a subnet two Nodes' CIDRs overlap stays
// used until both are gone.
func TestAllocatorOverlapsStayUsed(t *testing.T) {
	a := newAllocator(t, "10.88.0.0/22", 24)
	a.Occupy("half-a", netip.MustParsePrefix("10.88.0.0/25"))
	a.Occupy("half-b", netip.MustParsePrefix("10.88.0.128/25"))
	a.Release("half-a")
	if got := allocate(t, a, "n"); got != "10.88.1.0/24" {
		t.Errorf("got %s while half-b holds half of 10.88.0.0/24, want 10.88.1.0/24", got)
	}
	a.Release("half-b")
	if got := allocate(t, a, "m"); got != "10.88.0.0/24" {
		t.Errorf("got %s, want 10.88.0.0/24 once both halves are gone", got)
	}
	// A CIDR wider than the cluster CIDR uses all of it.
	a.Occupy("everything", netip.MustParsePrefix("10.0.0.0/8"))
	if _, err := a.Allocate("o"); !errors.Is(err, ErrFull) || a.Free() != 0 {
		t.Errorf("with a /8 holding the cluster CIDR: %v, %d free, want ErrFull", err, a.Free())
	}
}

// TestAllocatorNodeChangesCIDR: a Node seen with another CIDR than the one
// recorded (its name was reused) gives back the old one.
func TestAllocatorNodeChangesCIDR(t *testing.T) {
	a := newAllocator(t, "10.88.0.0/23", 24)
	allocate(t, a, "n") // 10.88.0.0/24
	a.Occupy("n", netip.MustParsePrefix("10.88.1.0/24"))
	if got := allocate(t, a, "m"); got != "10.88.0.0/24" {
		t.Errorf("got %s, want 10.88.0.0/24, given back", got)
	}
	a.Occupy("admin", netip.MustParsePrefix("172.16.0.0/24"))
	a.Release("n")
	if got := allocate(t, a, "admin"); got != "10.88.1.0/24" {
		t.Errorf("a recreated Node without a CIDR got %s, want a subnet of the cluster CIDR", got)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cidr string
		mask int
		want string // in the error; "" is valid
	}{
		{"10.88.0.0/16", 24, ""},
		{"10.88.0.0/16", 16, ""},
		{"10.88.0.0/16", 29, ""},
		{"10.0.0.0/8", 24, ""},
		{"0.0.0.0/0", 24, ""},
		{"10.88.0.0", 24, "--cluster-cidr"},
		{"", 24, "--cluster-cidr"},
		{"fd00::/48", 64, "--cluster-cidr \"fd00::/48\": must be an IPv4 CIDR"},
		{"10.88.1.0/16", 24, "--cluster-cidr \"10.88.1.0/16\": must be in canonical form, 10.88.0.0/16"},
		{"10.88.0.0/16", 15, "--node-cidr-mask-size 15: must be between the --cluster-cidr prefix length 16 and 29"},
		{"10.88.0.0/16", 30, "--node-cidr-mask-size 30"},
		{"0.0.0.0/0", 25, "--node-cidr-mask-size 25: at most 24 more"},
	} {
		err := Config{ClusterCIDR: tc.cidr, NodeCIDRMaskSize: tc.mask}.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s with /%d: %v, want valid", tc.cidr, tc.mask, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s with /%d: %v, want an error with %q", tc.cidr, tc.mask, err, tc.want)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}
