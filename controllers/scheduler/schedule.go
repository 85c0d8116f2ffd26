package scheduler

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync/atomic"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// Result is where an Instance goes, or why it goes nowhere.
type Result struct {
	// Node is the chosen node; empty when none fits.
	Node string
	// Feasible counts the nodes that passed every filter (only the
	// nominated node when the Instance went there).
	Feasible int
	// Reasons counts the nodes each filter reason ruled out.
	Reasons map[string]int
	// PerNode is the reason each ruled-out node failed, by node name.
	PerNode map[string]string
	// Score is the chosen node's total score.
	Score int
}

// Scheduler holds the filters and scores to run.
type Scheduler struct {
	Filters []Filter
	Scores  []Score
	// Rand breaks ties; nil uses the global source.
	Rand *rand.Rand
	// next is where the next search for feasible nodes starts, so that
	// searches that stop early still visit every node in turn.
	next atomic.Uint64
}

// feasibleToFind is how many feasible nodes a search looks for before it
// stops and scores them: every node in small clusters, a share shrinking
// from half to 5% (but at least 100) in large ones. These are
// kube-scheduler's numbers (percentageOfNodesToScore); a search that finds
// fewer goes through every node, so a no-fit verdict always saw them all.
func feasibleToFind(total int) int {
	if total <= 100 {
		return total
	}
	pct := max(50-total/125, 5)
	return max(total*pct/100, 100)
}

// New returns a scheduler with the default filters and the strategy's scores.
func New(s Strategy) *Scheduler {
	return &Scheduler{Filters: DefaultFilters, Scores: Scores(s)}
}

// ruledOut is a node a filter ruled out, and why.
type ruledOut struct {
	node   *NodeInfo
	reason string
}

// Schedule picks a node for inst among nodes. An Instance that preempted
// others goes to its nominated node when it fits there, without scoring:
// the room was made for it. nodes is a snapshot: it is not changed in
// place, and what is placed on its nodes goes through NodeInfo.Add.
func (s *Scheduler) Schedule(inst *skiffv1alpha1.Instance, nodes []*NodeInfo) Result {
	res := Result{Reasons: map[string]int{}}
	c := newCycle(inst, nodes, false)
	if name := inst.Status.NominatedNodeName; name != "" {
		for _, n := range nodes {
			if n.Node.Name == name && s.filter(c, n) == "" {
				res.Node, res.Feasible = name, 1
				return res
			}
		}
	}
	want := feasibleToFind(len(nodes))
	start := 0
	if len(nodes) > 0 && want < len(nodes) {
		start = int(s.next.Load() % uint64(len(nodes)))
	}
	var (
		out       []ruledOut
		best      *NodeInfo
		top, ties = -1, 0
		visited   = 0
	)
	for i := range nodes {
		if res.Feasible >= want {
			break
		}
		visited = i + 1
		n := nodes[(start+i)%len(nodes)]
		if reason := s.filter(c, n); reason != "" {
			out = append(out, ruledOut{n, reason})
			continue
		}
		res.Feasible++
		score := 0
		for _, sc := range s.Scores {
			score += sc.Weight * sc.Fn(c, n)
		}
		switch {
		case score > top:
			top, best, ties = score, n, 1
		case score == top:
			// Each of the tied nodes is kept with the same chance.
			ties++
			if s.intN(ties) == 0 {
				best = n
			}
		}
	}
	if len(nodes) > 0 && want < len(nodes) {
		s.next.Store(uint64((start + visited) % len(nodes)))
	}
	res.PerNode = make(map[string]string, len(out))
	for _, o := range out {
		res.Reasons[o.reason]++
		res.PerNode[o.node.Node.Name] = o.reason
	}
	if best != nil {
		res.Node, res.Score = best.Node.Name, top
	}
	return res
}

// intN is a random number in [0, n).
func (s *Scheduler) intN(n int) int {
	if s.Rand != nil {
		return s.Rand.IntN(n)
	}
	return rand.IntN(n)
}

func (s *Scheduler) filter(c *cycle, n *NodeInfo) string {
	for _, f := range s.Filters {
		if reason := f.Fn(c, n); reason != "" {
			return reason
		}
	}
	return ""
}

// Message says why no node fits, as Kubernetes does: "0/6 nodes are
// available: 3 insufficient cpu, 2 untolerated taint {dedicated=gpu}, 1 not
// ready." Reasons are ordered by count, then name.
func (r Result) Message(total int) string {
	type count struct {
		reason string
		n      int
	}
	var counts []count
	for reason, n := range r.Reasons {
		counts = append(counts, count{reason, n})
	}
	sort.Slice(counts, func(i, j int) bool {
		if counts[i].n != counts[j].n {
			return counts[i].n > counts[j].n
		}
		return counts[i].reason < counts[j].reason
	})
	parts := make([]string, len(counts))
	for i, c := range counts {
		parts[i] = fmt.Sprintf("%d %s", c.n, c.reason)
	}
	msg := fmt.Sprintf("%d/%d nodes are available", r.Feasible, total)
	if len(parts) > 0 {
		msg += ": " + strings.Join(parts, ", ")
	}
	return msg + "."
}

// Failures lists, by node name, the filter reason of the first
// MaxSchedulingFailures nodes that ruled the Instance out: the detail that
// Message's counts leave out.
func (r Result) Failures() []skiffv1alpha1.NodeSchedulingFailure {
	names := make([]string, 0, len(r.PerNode))
	for name := range r.PerNode {
		names = append(names, name)
	}
	slices.Sort(names)
	names = names[:min(len(names), skiffv1alpha1.MaxSchedulingFailures)]
	out := make([]skiffv1alpha1.NodeSchedulingFailure, len(names))
	for i, name := range names {
		out[i] = skiffv1alpha1.NodeSchedulingFailure{Node: name, Reason: r.PerNode[name]}
	}
	return out
}
