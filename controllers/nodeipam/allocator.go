package nodeipam

import (
	"encoding/binary"
	"errors"
	"math/bits"
	"net/netip"
)

// ErrFull is returned when every subnet of the cluster CIDR is held.
var ErrFull = errors.New("no free subnet left in the cluster CIDR")

// Allocator hands out the subnets of a cluster CIDR to Nodes by name,
// lowest free first, and knows which Node holds which subnet. A bitmap
// over the subnets keeps it small (5,000 Nodes are 625 bytes) and an
// allocation cheap: the search starts at the first word with a free bit.
// It is not safe for concurrent use.
type Allocator struct {
	cluster netip.Prefix
	base    uint32 // the cluster CIDR's first address
	shift   int    // 32 - the subnets' prefix length
	size    int    // number of subnets

	used   []uint64 // bit i set: subnet i is held (bits past size are set)
	free   int
	lowest int // no word before used[lowest] has a free bit

	// holders is every Node's subnet, the allocator's own and the ones
	// admins wrote (inside the cluster CIDR or not).
	holders map[string]netip.Prefix
}

// NewAllocator returns an allocator of c's subnets, all free.
func NewAllocator(c Config) (*Allocator, error) {
	cluster, err := c.prefix()
	if err != nil {
		return nil, err
	}
	size := 1 << (c.NodeCIDRMaskSize - cluster.Bits())
	a := &Allocator{
		cluster: cluster, base: addr32(cluster.Addr()), shift: 32 - c.NodeCIDRMaskSize, size: size,
		used: make([]uint64, (size+63)/64), free: size, holders: map[string]netip.Prefix{},
	}
	if tail := size % 64; tail != 0 {
		a.used[len(a.used)-1] = ^uint64(0) << tail
	}
	return a, nil
}

// Free counts the subnets not held.
func (a *Allocator) Free() int { return a.free }

// Held returns the subnet node holds, if any.
func (a *Allocator) Held(node string) (netip.Prefix, bool) {
	p, ok := a.holders[node]
	return p, ok
}

// Allocate gives node the lowest free subnet, or the one it holds
// already if the allocator gave it that one, or fails with ErrFull.
func (a *Allocator) Allocate(node string) (netip.Prefix, error) {
	if p, ok := a.holders[node]; ok {
		if a.isSubnet(p) {
			return p, nil
		}
		a.Release(node) // an admin's, of an earlier Node of that name
	}
	for w := a.lowest; w < len(a.used); w++ {
		if a.used[w] == ^uint64(0) {
			continue
		}
		a.lowest = w
		i := w*64 + bits.TrailingZeros64(^a.used[w])
		a.set(i)
		p := a.subnet(i)
		a.holders[node] = p
		return p, nil
	}
	a.lowest = len(a.used)
	return netip.Prefix{}, ErrFull
}

// Occupy records that node holds p (as its Node says), releasing what it
// held before. The subnets p overlaps are used from now on; a p outside
// the cluster CIDR is recorded but uses none.
func (a *Allocator) Occupy(node string, p netip.Prefix) {
	p = p.Masked()
	if old, ok := a.holders[node]; ok {
		if old == p {
			return
		}
		a.Release(node)
	}
	a.holders[node] = p
	a.mark(p)
}

// Release frees what node holds. A subnet another Node's CIDR also
// overlaps (admins can write overlapping or narrower ones) stays used.
func (a *Allocator) Release(node string) {
	p, ok := a.holders[node]
	if !ok {
		return
	}
	delete(a.holders, node)
	lo, hi, ok := a.span(p)
	if !ok {
		return
	}
	for i := lo; i <= hi; i++ {
		a.clear(i)
	}
	for _, other := range a.holders {
		if olo, ohi, ok := a.span(other); ok && olo <= hi && ohi >= lo {
			a.mark(other)
		}
	}
}

// mark uses the subnets p overlaps.
func (a *Allocator) mark(p netip.Prefix) {
	lo, hi, ok := a.span(p)
	if !ok {
		return
	}
	for i := lo; i <= hi; i++ {
		a.set(i)
	}
}

// span is the range of subnet indexes p overlaps, if any.
func (a *Allocator) span(p netip.Prefix) (lo, hi int, ok bool) {
	if !p.Addr().Is4() || !p.Overlaps(a.cluster) {
		return 0, 0, false
	}
	// Two overlapping prefixes nest: the overlap is the narrower one.
	inner := p
	if p.Bits() < a.cluster.Bits() {
		inner = a.cluster
	}
	first := uint64(addr32(inner.Addr()) - a.base)
	last := first + 1<<(32-inner.Bits()) - 1
	return int(first >> a.shift), int(last >> a.shift), true
}

// isSubnet reports whether p is one of the subnets the allocator hands out.
func (a *Allocator) isSubnet(p netip.Prefix) bool {
	return p.Bits() == 32-a.shift && a.cluster.Contains(p.Addr()) && p.Masked() == p
}

func (a *Allocator) subnet(i int) netip.Prefix {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], a.base+uint32(i)<<a.shift)
	return netip.PrefixFrom(netip.AddrFrom4(b), 32-a.shift)
}

func (a *Allocator) set(i int) {
	w, bit := i/64, uint64(1)<<(i%64)
	if a.used[w]&bit == 0 {
		a.used[w] |= bit
		a.free--
	}
}

func (a *Allocator) clear(i int) {
	w, bit := i/64, uint64(1)<<(i%64)
	if a.used[w]&bit != 0 {
		a.used[w] &^= bit
		a.free++
		a.lowest = min(a.lowest, w)
	}
}

func addr32(addr netip.Addr) uint32 {
	b := addr.As4()
	return binary.BigEndian.Uint32(b[:])
}
