package controllers_test

import (
	"testing"

	"skiff.dev/skiff/controllers"
)

// TestNoConflictingWrites: a Workload of 50 replicas comes up on a fleet
// without a write of the controllers' or the agents' conflicting (each
// writes from the object as its own last write left it, not from the
// cache's older copy), and without writes it can do without.
func TestNoConflictingWrites(t *testing.T) {
	p := startPlane(t, 5, controllers.DefaultConfig())
	// The API server's request counters are the test binary's: count
	// from here.
	statusWrites := []string{`resource="workloads"`, `subresource="status"`, `verb="PUT"`}
	events := []string{`resource="events"`, `verb="POST"`}
	conflicts0 := map[string]int{"workloads": p.s.Conflicts(t, "workloads"), "instances": p.s.Conflicts(t, "instances")}
	status0, events0 := p.s.Requests(t, statusWrites...), p.s.Requests(t, events...)
	// An Instance's way to Running is three writes: the create, the bind
	// (which sets the agent's finalizer too) and the agent's status.
	perInstance := map[string][]string{
		"creates":               {`resource="instances"`, `subresource=""`, `verb="POST"`},
		"binds":                 {`resource="instances"`, `subresource="binding"`, `verb="POST"`},
		"status writes":         {`resource="instances"`, `subresource="status"`, `verb="PUT"`},
		"other writes (PUT)":    {`resource="instances"`, `subresource=""`, `verb="PUT"`},
		"other writes (PATCH)":  {`resource="instances"`, `subresource=""`, `verb="PATCH"`},
		"status writes (PATCH)": {`resource="instances"`, `subresource="status"`, `verb="PATCH"`},
	}
	writes0 := map[string]int{}
	for what, labels := range perInstance {
		writes0[what] = p.s.Requests(t, labels...)
	}

	w := webWorkload("many", 50, "registry.local/web:1")
	if err := p.admin.Create(p.ctx, w); err != nil {
		t.Fatal(err)
	}
	p.waitRunning(t, w, 50, "registry.local/web:1")
	eventually(t, "status of 50 ready", func() bool { return p.get(t, w).Status.ReadyReplicas == 50 })
	for resource, before := range conflicts0 {
		if got := p.s.Conflicts(t, resource) - before; got != 0 {
			t.Errorf("%d writes of %s conflicted, want none", got, resource)
		}
	}
	// The Workload's status follows its 50 Instances a few times a
	// second, not once per Instance.
	if got := p.s.Requests(t, statusWrites...) - status0; got > 25 {
		t.Errorf("%d writes of the Workload's status for 50 Instances, want them coalesced (at most 25)", got)
	}
	// The scheduler records no Scheduled Event for an Instance placed at
	// its first try: the bind's Scheduled condition says where.
	if got := p.s.Requests(t, events...) - events0; got > 5 {
		t.Errorf("%d Events for 50 Instances placed at once", got)
	}
	// Exactly one create and one bind each (more would be replacements or
	// retried binds); one status write each, give or take a few a loaded
	// machine may add; nothing else.
	for what, want := range map[string]int{"creates": 50, "binds": 50, "status writes": 50,
		"other writes (PUT)": 0, "other writes (PATCH)": 0, "status writes (PATCH)": 0} {
		got := p.s.Requests(t, perInstance[what]...) - writes0[what]
		if got != want && !(what == "status writes" && got >= want && got <= want+5) {
			t.Errorf("%d Instance %s on the way to 50 Running, want %d", got, what, want)
		}
	}
}

// TestControllersReadInProcess: the controllers of a server list and
// watch its storage in process (Controllers.ReadFrom), not through the
// API: while they bring a Workload up, none of the API's watches is
// theirs.
func TestControllersReadInProcess(t *testing.T) {
	p := startPlane(t, 1, controllers.DefaultConfig())
	w := webWorkload("local", 2, "registry.local/web:1")
	if err := p.admin.Create(p.ctx, w); err != nil {
		t.Fatal(err)
	}
	p.waitRunning(t, w, 2, "registry.local/web:1")
	// The fleet watches its node's Instances through the API; only the
	// controllers watch Workloads and Nodes.
	for _, resource := range []string{"workloads", "nodes"} {
		if got := p.s.Metric(t, "apiserver_longrunning_requests", `resource="`+resource+`"`, `verb="WATCH"`); got != 0 {
			t.Errorf("%d watches of %s open through the API, want none: the controllers watch in process", got, resource)
		}
	}
}
