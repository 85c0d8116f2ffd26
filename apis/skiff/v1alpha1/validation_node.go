package v1alpha1

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"net/netip"
	"slices"

	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ValidateNode checks a Node on create. Nodes are cluster-scoped and named
// after their host, so the name is a DNS subdomain.
func ValidateNode(n *Node) field.ErrorList {
	allErrs := apivalidation.ValidateObjectMeta(&n.ObjectMeta, false, apivalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	specPath := field.NewPath("spec")
	allErrs = append(allErrs, validateTaints(n.Spec.Taints, specPath.Child("taints"))...)
	allErrs = append(allErrs, validateInstanceCIDR(n.Spec.InstanceCIDR, specPath.Child("instanceCIDR"))...)
	return append(allErrs, validatePublicKey(n.Spec.PublicKey, specPath.Child("publicKey"))...)
}

// validateInstanceCIDR accepts an empty CIDR (none given yet) or an IPv4
// network in canonical form, with room for a gateway and Instances.
func validateInstanceCIDR(cidr string, fldPath *field.Path) field.ErrorList {
	if cidr == "" {
		return nil
	}
	prefix, err := netip.ParsePrefix(cidr)
	switch {
	case err != nil:
		return field.ErrorList{field.Invalid(fldPath, cidr, "must be a CIDR such as 10.88.3.0/24")}
	case !prefix.Addr().Is4():
		return field.ErrorList{field.Invalid(fldPath, cidr, "must be an IPv4 network")}
	case prefix.Masked() != prefix:
		return field.ErrorList{field.Invalid(fldPath, cidr, fmt.Sprintf("must be the network's own address, %s", prefix.Masked()))}
	case prefix.Bits() > 29:
		return field.ErrorList{field.Invalid(fldPath, cidr, "must be /29 or larger: the gateway and at least one Instance need addresses")}
	}
	return nil
}

// ValidateNodeUpdate checks a Node update. The public key is the node's
// identity: once set, replacing it would let another machine take over the
// Node's Instances, so only an unset key may be filled in (by the agent's
// registration).
func ValidateNodeUpdate(newN, oldN *Node) field.ErrorList {
	allErrs := apivalidation.ValidateObjectMetaUpdate(&newN.ObjectMeta, &oldN.ObjectMeta, field.NewPath("metadata"))
	allErrs = append(allErrs, ValidateNode(newN)...)
	if oldN.Spec.PublicKey != "" && newN.Spec.PublicKey != oldN.Spec.PublicKey {
		allErrs = append(allErrs, field.Invalid(field.NewPath("spec", "publicKey"), newN.Spec.PublicKey, "field is immutable once set"))
	}
	if oldN.Spec.InstanceCIDR != "" && newN.Spec.InstanceCIDR != oldN.Spec.InstanceCIDR {
		// Running Instances hold addresses from it.
		allErrs = append(allErrs, field.Invalid(field.NewPath("spec", "instanceCIDR"), newN.Spec.InstanceCIDR, "field is immutable once set"))
	}
	return allErrs
}

// ValidateNodeStatusUpdate checks a write to a Node's status subresource:
// a known phase, well-formed conditions, non-negative resources and known
// address types.
func ValidateNodeStatusUpdate(newN, oldN *Node) field.ErrorList {
	allErrs := apivalidation.ValidateObjectMetaUpdate(&newN.ObjectMeta, &oldN.ObjectMeta, field.NewPath("metadata"))
	statusPath := field.NewPath("status")
	s := &newN.Status
	phases := []NodePhase{NodeReady, NodeNotReady, NodeUnknown, NodeDown}
	allErrs = append(allErrs, validateOptionalEnum(s.Phase, phases, statusPath.Child("phase"))...)
	allErrs = append(allErrs, metav1validation.ValidateConditions(s.Conditions, statusPath.Child("conditions"))...)
	allErrs = append(allErrs, validateResourceQuantities(s.Capacity, statusPath.Child("capacity"))...)
	allErrs = append(allErrs, validateResourceQuantities(s.Allocatable, statusPath.Child("allocatable"))...)
	for _, name := range sortedResourceNames(s.Allocatable) {
		a := s.Allocatable[name]
		if c, ok := s.Capacity[name]; ok && a.Cmp(c) > 0 {
			allErrs = append(allErrs, field.Invalid(statusPath.Child("allocatable").Key(string(name)), a.String(), "must be less than or equal to capacity ("+c.String()+")"))
		}
	}
	gossip := []GossipState{GossipAlive, GossipSuspect, GossipDead, GossipLeft}
	allErrs = append(allErrs, validateOptionalEnum(s.Gossip, gossip, statusPath.Child("gossip"))...)
	if a := s.GossipAddress; a != "" {
		if _, err := netip.ParseAddrPort(a); err != nil {
			allErrs = append(allErrs, field.Invalid(statusPath.Child("gossipAddress"), a, "must be ip:port"))
		}
	}
	allErrs = append(allErrs, validateNodeAddresses(s.Addresses, statusPath.Child("addresses"))...)
	if s.AgentEndpoint != "" {
		if err := CheckAgentEndpoint(s.AgentEndpoint, s.Addresses); err != nil {
			allErrs = append(allErrs, field.Invalid(statusPath.Child("agentEndpoint"), s.AgentEndpoint, err.Error()))
		}
	}
	return allErrs
}

// CheckAgentEndpoint reports whether endpoint is a place the API server
// may dial for a node's agent: ip:port with one of the node's own
// InternalIP or ExternalIP addresses (or loopback, for an agent on the
// API server's machine) and a port in 1-65535. The API server checks it
// again before it dials, so that nothing stored before this check made
// it a way to reach other hosts.
func CheckAgentEndpoint(endpoint string, addrs []NodeAddress) error {
	ap, err := netip.ParseAddrPort(endpoint)
	if err != nil || ap.Port() == 0 {
		return fmt.Errorf("must be ip:port with a port in 1-65535")
	}
	ip := ap.Addr().Unmap()
	if ip.IsLoopback() {
		return nil
	}
	for _, a := range addrs {
		if a.Type != NodeInternalIP && a.Type != NodeExternalIP {
			continue
		}
		if own, err := netip.ParseAddr(a.Address); err == nil && own.Unmap() == ip {
			return nil
		}
	}
	return fmt.Errorf("the IP must be one of the node's InternalIP or ExternalIP addresses in status.addresses, or loopback")
}

// validateTaints checks each taint, and that no two share a key and
// effect: a toleration could match one and not the other.
func validateTaints(taints []Taint, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	type key struct {
		key    string
		effect TaintEffect
	}
	var seen []key
	for i := range taints {
		t, idxPath := &taints[i], fldPath.Index(i)
		allErrs = append(allErrs, validateTaint(t, idxPath)...)
		k := key{t.Key, t.Effect}
		if slices.Contains(seen, k) {
			allErrs = append(allErrs, field.Duplicate(idxPath, t.Key+":"+string(t.Effect)))
		}
		seen = append(seen, k)
	}
	return allErrs
}

func validateTaint(t *Taint, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	keyPath := fldPath.Child("key")
	if t.Key == "" {
		allErrs = append(allErrs, field.Required(keyPath, "a taint key is required"))
	} else {
		allErrs = append(allErrs, metav1validation.ValidateLabelName(t.Key, keyPath)...)
	}
	for _, msg := range validation.IsValidLabelValue(t.Value) {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("value"), t.Value, msg))
	}
	effectPath := fldPath.Child("effect")
	if t.Effect == "" {
		return append(allErrs, field.Required(effectPath, "a taint effect is required"))
	}
	return append(allErrs, validateTaintEffect(t.Effect, effectPath)...)
}

// validatePublicKey accepts an empty key (not registered yet) or the
// standard base64 encoding of an Ed25519 public key.
func validatePublicKey(key string, fldPath *field.Path) field.ErrorList {
	if key == "" {
		return nil
	}
	raw, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		return field.ErrorList{field.Invalid(fldPath, key, "must be standard base64 (RFC 4648 with padding)")}
	}
	if len(raw) != ed25519.PublicKeySize {
		return field.ErrorList{field.Invalid(fldPath, key, fmt.Sprintf("must decode to %d bytes (an Ed25519 public key), not %d", ed25519.PublicKeySize, len(raw)))}
	}
	return nil
}

func validateNodeAddresses(addrs []NodeAddress, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	types := []NodeAddressType{NodeHostName, NodeInternalIP, NodeExternalIP}
	for i, a := range addrs {
		idxPath := fldPath.Index(i)
		if !slices.Contains(types, a.Type) {
			allErrs = append(allErrs, field.NotSupported(idxPath.Child("type"), a.Type, types))
		}
		if a.Address == "" {
			allErrs = append(allErrs, field.Required(idxPath.Child("address"), "an address is required"))
		}
	}
	return allErrs
}
