package apiserver

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// nodeName returns NAME for a node identity skiff:node:NAME.
func nodeName(u user.Info) (string, bool) {
	if u == nil || !hasGroup(u, skiffv1alpha1.NodesGroup) {
		return "", false
	}
	name, ok := strings.CutPrefix(u.GetName(), skiffv1alpha1.NodeUserPrefix)
	return name, ok && name != ""
}

// selectsNode reports whether the request's field selector restricts it
// to Instances with spec.nodeName=node.
func selectsNode(a authorizer.Attributes, node string) bool {
	reqs, err := a.GetFieldSelector()
	if err != nil {
		return false
	}
	for _, r := range reqs {
		if r.Field == "spec.nodeName" && r.Value == node && (r.Operator == selection.Equals || r.Operator == selection.DoubleEquals) {
			return true
		}
	}
	return false
}

func hasGroup(u user.Info, group string) bool {
	for _, g := range u.GetGroups() {
		if g == group {
			return true
		}
	}
	return false
}

func isRead(verb string) bool {
	return verb == "get" || verb == "list" || verb == "watch"
}

// authorizeNode is the node restriction as far as request attributes
// tell: a node reads Nodes and its own Instances, writes its own Node's status and
// its own Lease, Instances' status and the agent finalizer (which Instances
// and which fields is checked by the nodeRestriction admission, which sees
// the objects), creates Events, and gets the Secrets and ConfigMaps its
// Instances reference. Everything else is denied.
func authorizeNode(ctx context.Context, node string, a authorizer.Attributes, refs referenceChecker) (authorizer.Decision, string) {
	if !a.IsResourceRequest() {
		return authorizer.DecisionNoOpinion, ""
	}
	res, sub, verb := a.GetResource(), a.GetSubresource(), a.GetVerb()
	allow := false
	switch {
	case a.GetAPIGroup() == skiffv1alpha1.GroupName && res == "nodes":
		// Labels, taints and unschedulable decide what lands on a node, so
		// a node writes only its status; its spec comes from registration
		// and from admins.
		allow = isRead(verb) && sub == "" ||
			(verb == "update" || verb == "patch") && a.GetName() == node && sub == "status"
	case a.GetAPIGroup() == skiffv1alpha1.GroupName && res == "instances":
		// A node reads Instances only through lists and watches that
		// select its own (a get by name would show any Instance).
		allow = (verb == "list" || verb == "watch") && sub == "" && selectsNode(a, node) ||
			(verb == "update" || verb == "patch") && (sub == "" || sub == "status")
	case a.GetAPIGroup() == "coordination.k8s.io" && res == "leases":
		allow = a.GetNamespace() == skiffv1alpha1.NodeLeaseNamespace &&
			(verb == "create" || a.GetName() == node && (isRead(verb) || verb == "update" || verb == "patch"))
	case a.GetAPIGroup() == "" && res == "events":
		allow = verb == "create"
	case a.GetAPIGroup() == "" && (res == "secrets" || res == "configmaps"):
		// By name only, and only what an Instance bound to the node uses.
		allow = verb == "get" && sub == "" && a.GetName() != "" && refs != nil &&
			refs(ctx, node, res, a.GetNamespace(), a.GetName())
	}
	if allow {
		return authorizer.DecisionAllow, ""
	}
	return authorizer.DecisionDeny, fmt.Sprintf("node %q may not %s %s", node, verb, resourceString(a))
}

// authorizeBootstrap lets the join token register a Node: create one, or
// set the key of one that has none (admission checks). It reads no Node:
// a get is refused whether or not the name exists, so the token cannot
// look at other nodes.
func authorizeBootstrap(a authorizer.Attributes) (authorizer.Decision, string) {
	if a.IsResourceRequest() && a.GetAPIGroup() == skiffv1alpha1.GroupName && a.GetResource() == "nodes" && a.GetSubresource() == "" {
		switch a.GetVerb() {
		case "create", "update", "patch":
			return authorizer.DecisionAllow, ""
		}
	}
	return authorizer.DecisionDeny, fmt.Sprintf("the join token may only register nodes, not %s %s", a.GetVerb(), resourceString(a))
}

func resourceString(a authorizer.Attributes) string {
	if !a.IsResourceRequest() {
		return a.GetPath()
	}
	s := a.GetResource()
	if a.GetSubresource() != "" {
		s += "/" + a.GetSubresource()
	}
	if a.GetName() != "" {
		s += " " + a.GetName()
	}
	if a.GetNamespace() != "" {
		s += " in namespace " + a.GetNamespace()
	}
	return s
}
